"""Runtime plumbing shared by the long-running roles.

- `queueing`: the work queue of object keys, its workers, failure backoff and
  resync jitter.
- `metrics`: the Prometheus registry: Flux v1 and v2 (gotk_*) names, helm calls,
  image automation.
- `queuemetrics`: the work queue's Prometheus metrics (controller-runtime names).
- `http`: the HTTP server for `/metrics`, `/healthz`, `/readyz` and `POST /api/v1/sync-git`.
- `health`: what `/healthz` and `/readyz` check (API server reachable, event
  loop not blocked, caches filled, leading).
- `logs`: log line formats (text, JSON) with structured fields, library noise folded.

Nothing here knows about HelmReleases, Helm or Git: the roles plug their
behaviour in through callbacks. Import the submodules directly; this package
re-exports nothing so that importing one piece does not pull in aiohttp.
"""
