"""Fakes behind the release engine's own interfaces, for reconcile scenarios
that run in milliseconds (`tests/unit/test_release_reconcile.py`).

- `storage.FakeStorage`: helm's release Secrets (`observe.StorageReader`).
- `helm.FakeHelm`: helm v4's install/upgrade/test/rollback/uninstall
  (`actions.HelmActions`), scriptable per call: `fail_next`, `kill_next`.
- `kube.FakeKube`, `kube.FakeChartFetcher`, `kube.FakeClock`: the API
  server, the chart fetcher and time.
- `world.World`: all of them around the real Reconciler.
- `texts`: helm v4's real error texts.

They are fakes for unit tests of the engine's logic; integration tests
prove the behaviour against the real cluster and the real helm.
"""
