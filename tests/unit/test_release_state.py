"""state.determine: the one action each observed release state calls for."""

from __future__ import annotations

from helm_operator.api.helmrelease import parse
from helm_operator.helm import HistoryEntry
from helm_operator.release.state import Action, State, describe_digest, determine

DESIRED = "a" * 64
OTHER = "b" * 64


def _hr(**spec: object):
    base = {"chart": {"repository": "https://charts.example.com/", "name": "x", "version": "1.0.0"}}
    base.update(spec)
    return parse({"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
                  "metadata": {"name": "web", "namespace": "apps", "generation": 1}, "spec": base})


def _rev(n: int, status: str, digest: str | None = None, description: str | None = None) -> HistoryEntry:
    desc = description if description is not None else (describe_digest(digest) if digest else "Install complete")
    return HistoryEntry(revision=n, status=status, chart="x-1.0.0", app_version="1", description=desc)


def test_absent_release_is_installed() -> None:
    assert determine(_hr(), None, DESIRED).action is Action.INSTALL


def test_release_deployed_with_the_desired_config_needs_nothing() -> None:
    d = determine(_hr(), [_rev(1, "deployed", DESIRED)], DESIRED)
    assert (d.state, d.action) == (State.IN_SYNC, Action.NONE)


def test_changed_config_is_upgraded() -> None:
    assert determine(_hr(), [_rev(1, "deployed", OTHER)], DESIRED).action is Action.UPGRADE


def test_release_installed_by_hand_is_upgraded_to_adopt_it() -> None:
    assert determine(_hr(), [_rev(1, "deployed", description="Install complete")], DESIRED).action is Action.UPGRADE


def test_pending_upgrade_is_recovered_by_rolling_back_to_the_last_deployed_revision() -> None:
    d = determine(_hr(), [_rev(1, "superseded", OTHER), _rev(2, "pending-upgrade", DESIRED)], DESIRED)
    assert (d.state, d.action, d.rollback_to) == (State.PENDING, Action.RECOVER, 1)


def test_pending_install_is_recovered_by_uninstalling() -> None:
    d = determine(_hr(), [_rev(1, "pending-install", DESIRED)], DESIRED)
    assert (d.action, d.rollback_to) == (Action.RECOVER, None)


def test_failed_first_install_is_uninstalled_before_installing_again() -> None:
    d = determine(_hr(), [_rev(1, "failed", description="Release failed")], DESIRED)
    assert (d.state, d.action) == (State.FAILED_INSTALL, Action.UNINSTALL)


def test_failed_upgrade_of_this_config_rolls_back_when_enabled() -> None:
    history = [_rev(1, "superseded", OTHER), _rev(2, "failed", description="Upgrade failed: boom")]
    d = determine(_hr(rollback={"enable": True}), history, DESIRED, attempted=DESIRED)
    assert (d.action, d.rollback_to) == (Action.ROLLBACK, 1)


def test_failed_upgrade_without_rollback_is_retried() -> None:
    history = [_rev(1, "superseded", OTHER), _rev(2, "failed", description="Upgrade failed: boom")]
    assert determine(_hr(), history, DESIRED, attempted=DESIRED).action is Action.UPGRADE


def test_rolled_back_config_is_left_alone_without_retry() -> None:
    history = [_rev(1, "superseded", OTHER), _rev(2, "failed", description="Upgrade failed"),
               _rev(3, "deployed", description="Rollback to 1")]
    d = determine(_hr(rollback={"enable": True}), history, DESIRED, rollback_count=1, attempted=DESIRED)
    assert (d.state, d.action) == (State.ROLLED_BACK, Action.NONE)


def test_rolled_back_config_is_retried_while_rollback_count_is_within_max_retries() -> None:
    history = [_rev(1, "superseded", OTHER), _rev(2, "failed", description="Upgrade failed"),
               _rev(3, "deployed", description="Rollback to 1")]
    hr = _hr(rollback={"enable": True, "retry": True, "maxRetries": 2})
    assert determine(hr, history, DESIRED, rollback_count=2, attempted=DESIRED).action is Action.UPGRADE
    assert determine(hr, history, DESIRED, rollback_count=3, attempted=DESIRED).action is Action.NONE


def test_zero_max_retries_means_unlimited() -> None:
    history = [_rev(1, "superseded", OTHER), _rev(2, "failed", description="Upgrade failed"),
               _rev(3, "deployed", description="Rollback to 1")]
    hr = _hr(rollback={"enable": True, "retry": True, "maxRetries": 0})
    assert determine(hr, history, DESIRED, rollback_count=99, attempted=DESIRED).action is Action.UPGRADE


def test_a_new_config_after_a_rollback_is_upgraded() -> None:
    history = [_rev(1, "superseded", OTHER), _rev(2, "failed", description="Upgrade failed"),
               _rev(3, "deployed", description="Rollback to 1")]
    assert determine(_hr(rollback={"enable": True}), history, DESIRED, attempted=OTHER).action is Action.UPGRADE


def test_upgrade_rolled_back_because_its_tests_failed_is_not_retried() -> None:
    """The undone revision is `superseded` (the upgrade itself worked) and still
    carries its digest: the rollback must be recognised, or tests loop."""
    history = [_rev(1, "superseded", OTHER), _rev(2, "superseded", DESIRED),
               _rev(3, "deployed", description="Rollback to 1")]
    d = determine(_hr(rollback={"enable": True}, test={"enable": True}), history, DESIRED, rollback_count=1)
    assert (d.state, d.action) == (State.ROLLED_BACK, Action.NONE)
