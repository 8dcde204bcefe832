"""Names of the HelmRelease v1 contract (COMPAT.md section 1), in one place.

Every string a user, `kubectl` or a dashboard can see (the resource's names,
phases, condition types, event reasons, annotation keys, fixed messages) is
defined here once so that no other module spells it by hand; image
automation's (COMPAT section 2) live beside them in `api/automation.py`.
No logic here.
"""

from __future__ import annotations

from enum import StrEnum

GROUP = "helm.fluxcd.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "HelmRelease"
LIST_KIND = "HelmReleaseList"
PLURAL = "helmreleases"
SINGULAR = "helmrelease"

# Ours: a finalizer so that a delete while the operator is down still
# uninstalls the release.
FINALIZER = "helm.fluxcd.io/helm-operator"

# On every object of a release: "<hrNamespace>:helmrelease/<hrName>".
ANTECEDENT_ANNOTATION = "helm.fluxcd.io/antecedent"

# Event reasons on the HelmRelease (Normal / Warning).
REASON_SYNCED = "ReleaseSynced"
REASON_FAILED = "FailedReleaseSync"

# The exact status message of Flux v1 for a chart without a complete source.
NO_CHART_SOURCE = "could not find valid chart source configuration for release"

# Defaults of the spec, named so that docs and code agree.
DEFAULT_GIT_REF = "master"
DEFAULT_MAX_HISTORY = 10
DEFAULT_TIMEOUT = 300
DEFAULT_ROLLBACK_MAX_RETRIES = 5
DEFAULT_VALUES_KEY = "values.yaml"

# Helm refuses longer release names; we say so before calling it.
MAX_RELEASE_NAME_LENGTH = 53


class Phase(StrEnum):
    """`status.phase`: the step the last reconciliation reached."""

    CHART_FETCHED = "ChartFetched"
    CHART_FETCH_FAILED = "ChartFetchFailed"
    INSTALLING = "Installing"
    UPGRADING = "Upgrading"
    DEPLOYED = "Deployed"
    DEPLOY_FAILED = "DeployFailed"
    TESTING = "Testing"
    TEST_FAILED = "TestFailed"
    TESTED = "Tested"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_FAILED = "RollbackFailed"


class ConditionType(StrEnum):
    """`status.conditions[].type`; `Ready` is ours, for `kubectl wait`."""

    CHART_FETCHED = "ChartFetched"
    DEPLOYED = "Deployed"
    RELEASED = "Released"
    ROLLED_BACK = "RolledBack"
    TESTED = "Tested"
    READY = "Ready"


class ChartSourceKind(StrEnum):
    """Where a chart comes from: a Helm repository, Git, or an OCI registry."""

    HELM = "helm"
    GIT = "git"
    OCI = "oci"


class ValuesSourceKind(StrEnum):
    """The key naming a `valuesFrom` entry's source, as spelled in the spec."""

    CONFIG_MAP = "configMapKeyRef"
    SECRET = "secretKeyRef"
    EXTERNAL = "externalSourceRef"
    CHART_FILE = "chartFileRef"
