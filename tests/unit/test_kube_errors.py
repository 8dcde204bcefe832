"""The one translation of API failures: the class says what happened, the
message says which call on which object and what the API server said, and
never carries URL credentials."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from helm_operator.kube.errors import (
    Conflict, Forbidden, Invalid, KubeError, NotFound, Timeout, Unreachable, from_exception, from_status,
)


def _status(code: int, message: str, reason: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                       "reason": reason, "code": code}).encode()


@pytest.mark.parametrize(("code", "reason", "cls"), [
    (404, "NotFound", NotFound), (409, "Conflict", Conflict), (409, "AlreadyExists", Conflict),
    (403, "Forbidden", Forbidden), (401, "Unauthorized", Forbidden), (422, "Invalid", Invalid),
    (400, "BadRequest", Invalid), (413, "RequestEntityTooLarge", Invalid), (504, "Timeout", Timeout),
    (500, "InternalError", KubeError), (429, "TooManyRequests", KubeError),
])
def test_each_status_becomes_its_class_with_the_servers_message(code: int, reason: str, cls: type) -> None:
    e = from_status("patch HelmRelease team-a/web", code, _status(code, "the server's own words", reason))
    assert type(e) is cls and e.status == code
    assert str(e).startswith("patch HelmRelease team-a/web: the server's own words")


def test_credentials_refused_says_what_to_check() -> None:
    e = from_status("list HelmReleases", 401, _status(401, "Unauthorized", "Unauthorized"))
    assert isinstance(e, Forbidden) and "check the kubeconfig's user" in str(e)


def test_an_answer_without_a_status_body_keeps_the_http_reason() -> None:
    assert str(from_status("get Secret a/b", 502, b"<html>bad gateway</html>", "Bad Gateway")) == \
        "get Secret a/b: Bad Gateway"
    assert str(from_status("get Secret a/b", 503, None)) == "get Secret a/b: HTTP 503"


def test_no_answer_is_unreachable_and_no_answer_in_time_is_timeout() -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
    e = from_exception("list HelmReleases", refused)
    assert type(e) is Unreachable and e.status is None
    assert str(e).startswith("list HelmReleases: cannot reach the API server (NewConnectionError")
    slow = urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out.")  # type: ignore[arg-type]
    assert type(from_exception("apply ConfigMap a/b", slow)) is Timeout
    assert isinstance(from_exception("apply ConfigMap a/b", slow), Unreachable)


def test_the_clients_tls_failure_is_unreachable_with_its_reason_on_one_line() -> None:
    e = from_exception("apply ConfigMap a/b", ApiException(status=0, reason="SSLError\nEOF occurred"))
    assert type(e) is Unreachable and "SSLError EOF occurred" in str(e) and "\n" not in str(e)


def test_messages_never_carry_url_credentials() -> None:
    body = _status(422, 'spec.chart.repository "https://bob:s3cret@charts.example/" is invalid', "Invalid")
    e = from_status("patch HelmRelease a/b", 422, body)
    assert "s3cret" not in str(e) and "bob" not in str(e)
    dropped = urllib3.exceptions.ProtocolError("https://alice:t0ken@proxy.example:3128 dropped")
    assert "t0ken" not in str(from_exception("get Secret a/b", dropped))
