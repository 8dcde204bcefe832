"""helm.failures.classify, on the texts helm v4.3.1 really prints and stores
(captured on the local cluster, see tests/unit/fakes_release/texts.py): as
`HelmError.message` after a failed call, and as the description of the
failed revision it left."""

from __future__ import annotations

import pytest

from helm_operator.helm.failures import FailureKind, classify
from tests.unit.fakes_release import texts

K = FailureKind


def forms(text: str) -> list[str]:
    """The message of a failed upgrade and install, and the descriptions they store."""
    t = text.format(ns="apps", name="apps-web")
    return [texts.upgrade_stderr(t), t, texts.upgrade_description("apps-web", t),
            texts.install_description("apps-web", t)]


@pytest.mark.parametrize(("text", "kind"), [
    (texts.REJECTED_TYPE, K.REJECTED),
    (texts.REJECTED_INVALID, K.REJECTED),
    (texts.REJECTED_IMMUTABLE, K.REJECTED),
    (texts.REMOVED_API, K.REJECTED),
    (texts.REMOVED_API_INSTALL, K.REJECTED),
    (texts.RENDER_FAILED, K.RENDER),
    (texts.TIMED_OUT, K.TIMEOUT),
    (texts.HOOK_FAILED_UPGRADE, K.HOOK),
    (texts.HOOK_FAILED_INSTALL, K.HOOK),
    (texts.PENDING, K.OTHER),
    (texts.KILLED, K.OTHER),
])
def test_real_helm_4_errors(text: str, kind: FailureKind) -> None:
    for form in forms(text):
        assert classify(form) is kind, form


@pytest.mark.parametrize(("text", "kind"), [
    ('admission webhook "validate.example.com" denied the request: replicas must be odd', K.REJECTED),
    ('deployments.apps "web" is forbidden: User "system:serviceaccount:apps:deployer" cannot patch resource',
     K.REJECTED),
    ("values don't meet the specifications of the schema(s) in the following chart(s):\npodinfo:\n- replicaCount: "
     "Invalid type. Expected: integer, given: string", K.RENDER),
    ("parse error at (podinfo/templates/deployment.yaml:12): unexpected EOF", K.RENDER),
    ("pre-upgrade hooks failed: resource Job/apps/migrate not ready. status: InProgress\n"
     "context deadline exceeded", K.HOOK),  # a hook that timed out is a hook failure: it ran
])
def test_other_helm_errors(text: str, kind: FailureKind) -> None:
    assert classify(text) is kind


def test_a_rejection_wins_over_words_of_other_kinds() -> None:
    """The API server's refusal of a hook's object is still a refusal: nothing changed."""
    assert classify("failed pre-install: Job.batch \"x\" is invalid: spec.template: Required value") is K.REJECTED
