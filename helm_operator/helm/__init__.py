"""The only package that imports `pyhelm3`: the helm binary as async calls,
helm's release storage decoded without it, and what helm's errors mean.

See `client.py`, `storage.py` and `failures.py`. Errors are translated at
this boundary into `HelmError`.
"""

from helm_operator.helm.client import Helm, HelmError, ReleaseNotFound, UpgradeOptions
from helm_operator.helm.failures import FailureKind, classify
from helm_operator.helm.storage import ReleaseRecord, RevisionMeta

__all__ = ["FailureKind", "Helm", "HelmError", "ReleaseNotFound", "ReleaseRecord", "RevisionMeta",
           "UpgradeOptions", "classify"]
