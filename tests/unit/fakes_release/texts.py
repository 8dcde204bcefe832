"""Error texts helm v4.3.1 really prints and stores, captured against the local
cluster (`python -m tests.cluster up`, kwok pods labelled to stay unready or
to fail) with a probe chart; `{ns}` and `{name}` stand for the release's
namespace and name.

helm prints `Error: <text>` on stderr (`Error: UPGRADE FAILED: <text>` for an
upgrade) and, when the revision had been created, stores
`Release "<name>" failed: <text>` (install) or `Upgrade "<name>" failed: <text>`
(upgrade) as the revision's description. `helm.client` strips `Error: `,
so a `HelmError.message` starts at `UPGRADE FAILED:` or at the text.
"""

from __future__ import annotations

# The API server refused the object (server-side apply, the default in helm 4):
# `replicaCount: "faulty"` into spec.replicas. The revision exists (failed).
REJECTED_TYPE = ("server-side apply failed for object {ns}/{name} apps/v1, Kind=Deployment: failed to create "
                 "typed patch object ({ns}/{name}; apps/v1, Kind=Deployment): .spec.replicas: expected numeric "
                 "(int or float), got string")
REJECTED_INVALID = ('failed to create resource: server-side apply failed for object {ns}/Bad_Name /v1, '
                    'Kind=ConfigMap: ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                    "'.', and must start and end with an alphanumeric character")
REJECTED_IMMUTABLE = ('server-side apply failed for object {ns}/{name} apps/v1, Kind=Deployment: Deployment.apps '
                      '"{name}" is invalid: spec.selector: Invalid value: {{"matchLabels":{{"app":"other"}}}}: '
                      "field is immutable")
# A removed API version: refused while building the objects, before any revision.
REMOVED_API = ('resource mapping not found for name: "{name}" namespace: "" from "": no matches for kind '
               '"HorizontalPodAutoscaler" in version "autoscaling/v2beta1"\nensure CRDs are installed first')
REMOVED_API_INSTALL = "unable to build kubernetes objects from release manifest: " + REMOVED_API
# A template error: before any revision.
RENDER_FAILED = "execution error at (probe/templates/deploy.yaml:1:31): values say failRender"
# --wait ran out of time: the objects were applied, the revision failed.
TIMED_OUT = ("resource Deployment/{ns}/{name} not ready. status: InProgress, message: Available: 0/1\n"
             "context deadline exceeded")
HOOK_FAILED_UPGRADE = ("post-upgrade hooks failed: resource Job/{ns}/{name}-hook not ready. status: Failed, "
                       "message: Job Failed. failed: 1/1")
HOOK_FAILED_INSTALL = ("failed post-install: resource Job/{ns}/{name}-hook not ready. status: Failed, "
                       "message: Job Failed. failed: 1/1")
# `helm test` with a failing test pod (the revision stays deployed).
TEST_FAILED = "resource Pod/{ns}/{name}-test not ready. status: Failed, message: pod {name}-test failed"
# `helm upgrade` while the newest revision is pending-*.
PENDING = "another operation (install/upgrade/rollback) is in progress"
# `helm uninstall` of a release that does not exist.
NOT_FOUND = "uninstall: Release not loaded: {name}: release: not found"
# What pyhelm3 reports when helm died without a word (SIGKILL).
KILLED = "exit code -9"


def upgrade_stderr(text: str) -> str:
    """What `HelmError.message` holds after a failed `helm upgrade`."""
    return f"UPGRADE FAILED: {text}"


def install_description(name: str, text: str) -> str:
    """The description helm stores on a failed install's revision."""
    return f'Release "{name}" failed: {text}'


def upgrade_description(name: str, text: str) -> str:
    """The description helm stores on a failed upgrade's revision."""
    return f'Upgrade "{name}" failed: {text}'
