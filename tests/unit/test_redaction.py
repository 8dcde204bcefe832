"""URL credentials never survive `redact_text`, in the error texts git, helm, aiohttp and urllib3 really print.

The quoted messages were captured from the real tools (git 2.x before it
learned to strip credentials itself, helm v4.3, aiohttp 3, urllib3 2) run
against a local server that answers 401 or a closed port.
"""

from __future__ import annotations

import pytest

from helm_operator.redaction import redact_text, redact_url, split_userinfo

SECRET = "S3cretPass"

CAPTURED = {
    "git unable to access": "fatal: unable to access 'http://user:S3cretPass@127.0.0.1:9/repo.git/': "
                            "Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server",
    "git authentication failed": "remote: Invalid username or password.\n"
                                 "fatal: Authentication failed for 'https://user:S3cretPass@git.example.com/org/r.git/'",
    "git token as user": "fatal: repository 'https://S3cretPass@github.com/org/private.git/' not found",
    "helm repository": 'Error: looks like "http://user:S3cretPass@127.0.0.1:18765/charts" is not a valid chart '
                       "repository or cannot be reached: failed to fetch "
                       "http://user:S3cretPass@127.0.0.1:18765/charts/index.yaml : 401 Unauthorized",
    "helm chart download": "Error: failed to fetch http://user:S3cretPass@127.0.0.1:18765/charts/podinfo-1.0.0.tgz "
                           ": 401 Unauthorized",
    "helm oci": "Error: failed to do request: Head \"https://user:S3cretPass@registry.example.com/v2/charts/"
                "podinfo/manifests/1.0.0\": dial tcp: lookup registry.example.com: no such host",
    "aiohttp invalid url": "InvalidUrlClientError: http://user:S3cretPass@127.0.0.1:99999/x",
    "aiohttp response error": "401, message='Unauthorized', url=URL('http://user:S3cretPass@127.0.0.1:18765/x')",
    "urllib3 url repr": "Url(scheme='http', auth='user:S3cretPass', host='host', port=None, path='/x', "
                        "query=None, fragment=None)",
    "urllib3 proxy": "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
                     "http://user:S3cretPass@example.com/ (Caused by ProxyError('Unable to connect to proxy'))",
    "password with a raw @": "GET http://user:S3cret@Pass@host.example.com/index.yaml failed",
    "percent-encoded password": "GET https://user:S3cret%40Pass@host.example.com/index.yaml failed",
}


@pytest.mark.parametrize("text", CAPTURED.values(), ids=CAPTURED.keys())
def test_no_password_survives_in_real_error_texts(text: str) -> None:
    redacted = redact_text(text)
    assert SECRET not in redacted and "S3cret" not in redacted and "Pass@" not in redacted
    assert redact_text(redacted) == redacted  # idempotent


def test_what_stays_readable() -> None:
    assert redact_text(CAPTURED["helm repository"]) == (
        'Error: looks like "http://127.0.0.1:18765/charts" is not a valid chart repository or cannot be reached: '
        "failed to fetch http://127.0.0.1:18765/charts/index.yaml : 401 Unauthorized")
    assert redact_text("clone of ssh://git:S3cretPass@host/r.git failed") == "clone of ssh://git@host/r.git failed"
    assert redact_text("no URL here, mail admin@example.com") == "no URL here, mail admin@example.com"
    assert redact_text("GET http://host/path?user=a@b failed") == "GET http://host/path?user=a@b failed"


def test_redact_url_and_split_userinfo() -> None:
    assert redact_url("https://user:S3cretPass@host/charts") == "https://host/charts"
    assert redact_url("oci://S3cretPass@registry/charts") == "oci://registry/charts"
    assert redact_url("ssh://git:S3cretPass@host/r.git") == "ssh://git@host/r.git"
    assert split_userinfo("http://user:S3cret%40Pass@host/x") == ("http://host/x", ("user", "S3cret@Pass"))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_log_line_and_traceback_is_redacted(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from helm_operator.cli.settings import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", fmt)
        log = logging.getLogger("helm_operator.anything")
        log.warning("fetching %s failed", "http://user:S3cretPass@host/charts")
        try:
            raise RuntimeError("GET https://user:S3cretPass@host/index.yaml: boom")
        except RuntimeError:
            log.exception("unexpected")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "fetching http://host/charts failed" in err and "boom" in err
    assert SECRET not in err


def test_the_errors_users_see_are_built_redacted() -> None:
    from helm_operator.automation.gitwrite import GitWriteError
    from helm_operator.automation.registry import RegistryError
    from helm_operator.chartsource import ChartFetchError
    from helm_operator.gitsync.mirror import GitError
    from helm_operator.helm.client import HelmError
    from helm_operator.kube.client import KubeError
    from helm_operator.release.values import ValuesError

    url = "http://user:S3cretPass@host/x"
    errors: list[BaseException] = [
        GitWriteError(f"git push to {url} failed"), RegistryError("list tags", "host/app", f"GET {url}: 401"),
        ChartFetchError(f"GET {url} failed", url=url), GitError(f"fetch of {url} failed"),
        HelmError("upgrade", "web", f'looks like "{url}" is not a valid chart repository'),
        KubeError(f"apply ConfigMap a/b: {url}"), ValuesError(f"externalSourceRef {url}: HTTP 401"),
    ]
    for e in errors:
        assert SECRET not in str(e), type(e).__name__
    chart_error = errors[2]
    assert isinstance(chart_error, ChartFetchError) and chart_error.url == "http://host/x"
