"""helm.storage: helm v4's release Secrets read without the helm binary.

The fixtures in tests/testdata/helm4 are Secrets helm v4.3.1 wrote on the
local cluster (`python -m tests.cluster up`): a failed upgrade (revision 2,
`replicaCount: "faulty"` refused by server-side apply) and a rollback
interrupted by SIGKILL (`pending-rollback`, labels copied from revision 1).
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from helm_operator.helm.storage import (
    ATTEMPT_LABEL,
    MAX_DIGEST_IN_LABEL,
    OWNER_LABEL,
    RevisionMeta,
    StorageDecodeError,
    TestHook,
    attempt_label,
    decode_release,
    owner_label,
    parse_owner,
    record_from_json,
    revision_meta,
)

DATA = Path(__file__).resolve().parents[1] / "testdata" / "helm4"


def secret(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def api_value(doc: Any, compress: bool = True) -> str:
    payload = json.dumps(doc).encode()
    return base64.b64encode(base64.b64encode(gzip.compress(payload) if compress else payload)).decode()


def test_decodes_a_real_helm_4_record() -> None:
    record = decode_release(secret("release-secret-failed-upgrade.json")["data"]["release"])
    assert (record.name, record.namespace, record.revision, record.status) == ("probe", "probe", 2, "failed")
    assert record.description.startswith('Upgrade "probe" failed: server-side apply failed for object probe/probe')
    assert "expected numeric (int or float), got string" in record.description
    assert (record.chart_name, record.chart_version, record.app_version) == ("probe", "0.1.0", "1.0")
    assert "kind: Deployment" in record.manifest
    assert record.test_hooks == (TestHook("probe-test", ""),) and record.test_result is None
    assert record.first_deployed.startswith("2026-") and record.last_deployed >= record.first_deployed


def test_decodes_a_real_interrupted_rollback() -> None:
    record = decode_release(secret("release-secret-pending-rollback.json")["data"]["release"])
    assert (record.revision, record.status, record.description) == (3, "pending-rollback", "Rollback to 1")


def test_labels_of_a_real_revision() -> None:
    name, meta = revision_meta(secret("release-secret-failed-upgrade.json")["metadata"])  # type: ignore[misc]
    assert name == "probe"
    assert meta == RevisionMeta(2, "failed", 2, "bbbb", "probe.web", "sh.helm.release.v1.probe.v2")
    assert meta.ours and meta.digest == "bbbb" and meta.matches("bbbb" + "0" * 60) and not meta.matches("aaaa")


def test_a_rollback_copies_the_target_labels_so_it_is_not_ours() -> None:
    name, meta = revision_meta(secret("release-secret-pending-rollback.json")["metadata"])  # type: ignore[misc]
    assert (name, meta.revision, meta.status, meta.attempt_revision, meta.attempt_digest) == (
        "r", 3, "pending-rollback", 1, "aaaa")
    assert not meta.ours and meta.digest is None and not meta.matches("aaaa")
    assert meta.owner is None  # that probe was made without the owner label


@pytest.mark.parametrize(("labels", "expected"), [
    ({"name": "x", "owner": "helm", "version": "1", "status": "deployed"}, ("x", RevisionMeta(1, "deployed"))),
    ({"name": "x", "owner": "helm", "version": "4"}, ("x", RevisionMeta(4, "unknown"))),
    ({"name": "x", "owner": "someone", "version": "1"}, None),
    ({"owner": "helm", "version": "1"}, None),
    ({"name": "x", "owner": "helm", "version": "v1"}, None),
    ({"name": "x", "owner": "helm", "version": "2", "status": "failed", ATTEMPT_LABEL: "nodot"},
     ("x", RevisionMeta(2, "failed"))),
    ({"name": "x", "owner": "helm", "version": "2", "status": "failed", ATTEMPT_LABEL: "two.abc"},
     ("x", RevisionMeta(2, "failed"))),
    ({"name": "x", "owner": "helm", "version": "2", "status": "failed", ATTEMPT_LABEL: "2."},
     ("x", RevisionMeta(2, "failed"))),
    ({"name": "x", "owner": "helm", "version": "2", "status": "failed", ATTEMPT_LABEL: "2.abc",
      OWNER_LABEL: "ns.hr"}, ("x", RevisionMeta(2, "failed", 2, "abc", "ns.hr"))),
])
def test_revision_meta_from_labels(labels: dict[str, str], expected: Any) -> None:
    assert revision_meta({"labels": labels}) == expected


def test_attempt_label_fits_a_label_value() -> None:
    digest = "f" * 64
    value = attempt_label(123456789, digest)
    assert value == f"123456789.{'f' * MAX_DIGEST_IN_LABEL}" and len(value) <= 63
    assert revision_meta({"labels": {"name": "x", "owner": "helm", "version": "123456789",
                                     ATTEMPT_LABEL: value}})[1].matches(digest)  # type: ignore[index]


def test_owner_label_is_readable_when_short_and_hashed_when_long() -> None:
    assert owner_label("apps", "web") == "apps.web"
    assert parse_owner("apps.web") == ("apps", "web")
    assert parse_owner(owner_label("apps", "web.v2")) == ("apps", "web.v2")  # names may hold dots, namespaces not
    long_name = "n" * 60
    hashed = owner_label("apps", long_name)
    assert hashed.startswith("h.") and len(hashed) <= 63
    assert hashed == owner_label("apps", long_name) != owner_label("apps", long_name + "x")
    assert owner_label("apps", "n" * 58) == "apps." + "n" * 58  # exactly 63 characters: kept
    assert parse_owner(hashed) is None
    for malformed in ("nodot", ".name", "ns."):
        assert parse_owner(malformed) is None


def test_decode_accepts_an_uncompressed_payload() -> None:
    record = decode_release(api_value({"name": "x", "version": 3, "info": {"status": "deployed"}}, compress=False))
    assert (record.name, record.revision, record.status) == ("x", 3, "deployed")


@pytest.mark.parametrize(("data", "error"), [
    ("%%%not-base64%%%", "not"),
    (base64.b64encode(base64.b64encode(b"\x1f\x8bnot gzip at all")).decode(), "not gzip"),
    (api_value("just a string"), "not a JSON object"),
    (base64.b64encode(base64.b64encode(b"{not json")).decode(), "not JSON"),
])
def test_decode_errors_say_what_is_wrong(data: str, error: str) -> None:
    with pytest.raises(StorageDecodeError, match=error):
        decode_release(data)


def test_decode_stops_at_the_size_limit() -> None:
    data = api_value({"name": "x", "manifest": "a" * 10_000})
    with pytest.raises(StorageDecodeError, match="larger than 1000 bytes"):
        decode_release(data, max_bytes=1000)


def test_test_result_of_the_hooks() -> None:
    def hooks(*phases: str) -> Any:
        return record_from_json({"hooks": [{"name": f"t{i}", "events": ["test"], "last_run": {"phase": p}}
                                           for i, p in enumerate(phases)]
                                 + [{"name": "pre", "events": ["pre-install"], "last_run": {"phase": "Failed"}}]})

    assert hooks("", "").test_result is None
    assert hooks("Succeeded", "Succeeded").test_result == "passed"
    assert hooks("Succeeded", "Failed").test_result == "failed"
    assert [h.name for h in hooks("Succeeded").test_hooks] == ["t0"]  # other hooks are not tests
