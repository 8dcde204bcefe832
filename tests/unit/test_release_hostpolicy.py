"""Scenarios for the externalSourceRef host policy (pure) and the fetcher that
applies it to a real HTTP server on 127.0.0.1, redirects and DNS answers."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from helm_operator.release.external import ExternalSourceError, ExternalSourceRefused, fetch_text
from helm_operator.release.hostpolicy import HostPolicy, parse_rule

DEFAULT = HostPolicy()


# ------------------------------------------------------------------ pure rules


@pytest.mark.parametrize(("host", "address", "why"), [
    ("127.0.0.1", None, "loopback"),
    ("127.9.9.9", None, "loopback"),
    ("::1", None, "loopback"),
    ("[::ffff:127.0.0.1]", None, "loopback"),
    ("0.0.0.0", None, "reaches loopback"),
    ("169.254.169.254", None, "link-local"),
    ("fe80::1", None, "link-local"),
    ("fd00:ec2::254", None, "AWS metadata"),
    ("100.100.100.200", None, "Alibaba Cloud metadata"),
    ("metadata.google.internal", None, "GCP metadata"),
    ("METADATA.google.internal.", None, "GCP metadata"),
    ("localhost", "127.0.0.1", "loopback"),
    ("charts.example.com", "169.254.169.254", "link-local"),
])
def test_loopback_link_local_and_cloud_metadata_are_denied_by_default(
        host: str, address: str | None, why: str) -> None:
    reason = DEFAULT.refusal(host, address)
    assert reason is not None and why in reason
    assert "--external-source-allow" in reason


@pytest.mark.parametrize(("host", "address"), [
    ("charts.example.com", None), ("charts.example.com", "93.184.216.34"), ("10.1.2.3", None),
    ("2001:db8::1", None),
])
def test_other_hosts_are_allowed_by_default(host: str, address: str | None) -> None:
    assert DEFAULT.refusal(host, address) is None


def test_an_allowed_address_opens_a_default_denied_one_and_nothing_else() -> None:
    policy = HostPolicy.from_flags(allow=["127.0.0.1"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("localhost", "127.0.0.1") is None
    assert policy.refusal("127.0.0.2") is not None
    assert policy.refusal("169.254.169.254") is not None


def test_an_allowed_name_never_opens_a_denied_address() -> None:
    """DNS of an allowed name that turns to the metadata address stays refused."""
    policy = HostPolicy.from_flags(allow=["charts.example.com"])
    assert policy.refusal("charts.example.com", "93.184.216.34") is None
    assert policy.refusal("charts.example.com", "169.254.169.254") is not None


def test_deny_star_with_allowed_names_and_networks_is_an_allow_list() -> None:
    policy = HostPolicy.from_flags(allow=["*.example.com", "10.0.0.0/8"], deny=["*"])
    assert policy.refusal("charts.example.com", "93.184.216.34") is None
    assert policy.refusal("example.com", "93.184.216.34") is not None, "*.domain is below the domain only"
    assert policy.refusal("evil.test", "93.184.216.34") is not None
    assert policy.refusal("10.4.5.6") is None
    assert policy.refusal("8.8.8.8") is not None


def test_denied_networks_and_names_from_the_flag() -> None:
    policy = HostPolicy.from_flags(deny=["10.0.0.0/8", "internal.example.com"])
    reason = policy.refusal("vault.svc", "10.3.3.3")
    assert reason is not None and "denied by --external-source-deny 10.0.0.0/8" in reason
    assert policy.refusal("internal.example.com", "93.184.216.34") is not None
    assert policy.refusal("www.example.com", "93.184.216.34") is None


@pytest.mark.parametrize("text", ["", "a b", "exa mple.com", "http://x", "1.2.3.4/33"])
def test_a_malformed_rule_is_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="IP|empty"):
        parse_rule(text)


# ------------------------------------------------- the fetcher, against a server


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        port = self.server.server_address[1]
        if self.path.startswith("/to-"):
            self.send_response(302)
            self.send_header("Location", f"http://{self.path[4:]}:{port}/values.yaml")
            self.end_headers()
            return
        if self.path == "/big":
            body = b"x" * 4096
        else:
            body = b"replicaCount: 3\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    handler = type("H", (_Handler,), {"hits": hits})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], hits
    srv.shutdown()
    srv.server_close()


async def test_a_loopback_url_is_refused_before_any_request(server: tuple[int, list[str]]) -> None:
    port, hits = server
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(ExternalSourceRefused, match="loopback"):
            await fetch_text(f"http://{host}:{port}/values.yaml", DEFAULT)
    assert hits == []


async def test_an_allowed_loopback_url_is_fetched(server: tuple[int, list[str]]) -> None:
    port, hits = server
    policy = HostPolicy.from_flags(allow=["127.0.0.1"])
    assert await fetch_text(f"http://127.0.0.1:{port}/values.yaml", policy) == "replicaCount: 3\n"
    assert await fetch_text(f"http://localhost:{port}/values.yaml", policy) == "replicaCount: 3\n"


async def test_a_redirect_is_checked_like_the_first_url(server: tuple[int, list[str]]) -> None:
    """Allowed 127.0.0.1 redirects to 127.0.0.2 (an IP literal, which aiohttp
    never resolves): refused before the second request."""
    port, hits = server
    policy = HostPolicy.from_flags(allow=["127.0.0.1"])
    assert await fetch_text(f"http://127.0.0.1:{port}/to-localhost", policy) == "replicaCount: 3\n"
    with pytest.raises(ExternalSourceRefused, match=r"^redirected to http://127.0.0.2:\d+/values.yaml: "
                                                    r"host 127.0.0.2 is a loopback"):
        await fetch_text(f"http://127.0.0.1:{port}/to-127.0.0.2", policy)
    assert hits == ["/to-localhost", "/values.yaml", "/to-127.0.0.2"]


async def test_only_the_addresses_that_passed_are_connected_to(
        server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to a denied and an allowed address: the check and the
    connection use the same single answer, and only the allowed address."""
    port, hits = server
    loop = asyncio.get_running_loop()
    calls: list[str] = []

    async def getaddrinfo(host: str, port_: int, **kwargs: Any) -> list[Any]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port_)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    policy = HostPolicy.from_flags(allow=["127.0.0.1"])
    assert await fetch_text(f"http://rebind.example:{port}/values.yaml", policy) == "replicaCount: 3\n"
    assert calls == ["rebind.example"], "resolved once, by the checking resolver"

    async def metadata_only(host: str, port_: int, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port_))]

    monkeypatch.setattr(loop, "getaddrinfo", metadata_only)
    with pytest.raises(ExternalSourceRefused, match=r"rebind.example \(resolved to 169.254.169.254\)"):
        await fetch_text(f"http://rebind.example:{port}/values.yaml", policy)


async def test_http_errors_and_oversized_bodies_are_errors_not_refusals(server: tuple[int, list[str]]) -> None:
    port, _ = server
    policy = HostPolicy.from_flags(allow=["127.0.0.1"])
    with pytest.raises(ExternalSourceError, match="larger than"):
        await fetch_text(f"http://127.0.0.1:{port}/big", policy, max_bytes=1024)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ExternalSourceError) as err:
        await fetch_text(f"http://127.0.0.1:{free}/v.yaml", policy)
    assert not isinstance(err.value, ExternalSourceRefused)
