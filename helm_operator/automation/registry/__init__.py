"""Registry client: the tags of an image repository and when each image was built.

Place in the flow::

    registry scan (this package) ─▶ policy picks newest allowed tag (pure)
                                 ─▶ YAML edit of the HelmRelease file ─▶ commit + push

Three rooms, each importing only the ones before it:

    credentials  registry credentials by host, from docker config JSON
    errors       the one error tree every failure leaves as
    transport    HTTP: auth (basic, bearer tokens), per-registry rate limit, retries
    client       the Registry API v2 / OCI calls: tags, manifests, build times, cache

The names users of the package need are importable from here. What this
package does NOT do: choose tags (`automation.policy`), read Secrets from the
cluster (the operator fills the `CredentialStore`), or edit anything.
"""

from helm_operator.automation.imageref import ImageRepo, parse_image_repo
from helm_operator.automation.registry.client import MetadataCache, RegistryClient
from helm_operator.automation.registry.credentials import CredentialStore, Credentials
from helm_operator.automation.registry.errors import (
    AccessDenied, AuthenticationFailed, InvalidResponse, NotFound, RateLimited, RegistryError,
    RegistryUnavailable,
)

__all__ = [
    "AccessDenied", "AuthenticationFailed", "CredentialStore", "Credentials", "ImageRepo",
    "InvalidResponse", "MetadataCache", "NotFound", "RateLimited", "RegistryClient",
    "RegistryError", "RegistryUnavailable", "parse_image_repo",
]
