"""The log matchers the integration tests rely on match what they mean.

A matcher that finds "403" in a timestamp fails CI at random; one that
misses a real refusal lets a missing RBAC rule through.
"""

from __future__ import annotations

import pytest

from tests.integration.helpers import api_refusals

REFUSED = [
    '15:31:03,120 DEBUG urllib3.connectionpool: https://127.0.0.1:41403 "GET /api/v1/secrets HTTP/1.1" 403 331',
    "(403)",
    "Reason: Forbidden",
    "15:31:03,120 WARNING helm_operator.kube.watch: watch of secrets failed (403 Forbidden); retrying in 1s",
    'get Secret ns/x: secrets "x" is forbidden: User "system:serviceaccount:ops:helm-operator" cannot get '
    'resource "secrets" in API group "" in the namespace "ns"',
]
ACCEPTED = [
    '15:31:03,403 DEBUG urllib3.connectionpool: https://127.0.0.1:40300 "GET /apis/helm.fluxcd.io/v1/'
    'namespaces/t-403/helmreleases/web HTTP/1.1" 200 931',
    "15:31:03,403 INFO helm_operator: ns-403/web: release 403-web is deployed (revision 403)",
    "upgrade of release forbidden-fruit succeeded",
]


@pytest.mark.parametrize("line", REFUSED)
def test_a_refusal_by_the_api_server_is_found(line: str) -> None:
    assert api_refusals(line) == [line]


@pytest.mark.parametrize("line", ACCEPTED)
def test_numbers_and_words_that_only_look_like_a_refusal_are_not(line: str) -> None:
    assert api_refusals(line) == []
