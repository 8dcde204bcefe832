"""Runtime plumbing shared by the long-running roles.

- `queueing`: the work queue of object keys, its workers, failure backoff and
  resync jitter.
- `metrics`: the Prometheus registry with the Flux v1 compatible metric names.
- `http`: the HTTP server for `/metrics`, `/healthz` and `POST /api/v1/sync-git`.

Nothing here knows about HelmReleases, Helm or Git: the roles plug their
behaviour in through callbacks. Import the submodules directly; this package
re-exports nothing so that importing one piece does not pull in aiohttp.
"""
