"""helm_operator: GitOps delivery for Kubernetes, focused on Helm.

The package holds three long-running roles (the release operator, the
manifest syncer and image automation) and the `helm-operator` CLI that runs
them. See ARCHITECTURE in the design notes for how data flows between them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("helm-operator")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"
