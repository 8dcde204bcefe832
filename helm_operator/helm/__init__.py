"""The only package that imports `pyhelm3`: the helm binary as async calls.

See `client.py`. Errors are translated at this boundary into `HelmError`.
"""

from helm_operator.helm.client import Helm, HelmError, HistoryEntry, ReleaseNotFound, UpgradeOptions

__all__ = ["Helm", "HelmError", "HistoryEntry", "ReleaseNotFound", "UpgradeOptions"]
