"""The release operator process (`helm-operator run`): watches, queue,
workers, periodic resync, Git polling and the HTTP endpoints, around
`release.Reconciler`."""
