"""The registry client against the real `docker-registry` (htpasswd basic auth,
anonymous, and bearer tokens from a token server on loopback), plus small
aiohttp stand-ins for the answers a real registry will not give on demand
(429 with Retry-After, 403). Images are pushed over the registry API by
tests/integration/images.py; no docker, no cluster.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web

from helm_operator.automation.policy import TagInfo, newest, parse_filter
from helm_operator.automation.registry import (
    AccessDenied, AuthenticationFailed, CredentialStore, MetadataCache, NotFound, RateLimited,
    RegistryClient, RegistryUnavailable, parse_image_repo,
)
from tests.cluster.localcluster import free_port
from tests.integration.images import Pusher
from tests.integration.registry import Registry, start_registry
from tests.integration.tokenauth import TokenServer, start_token_registry

USER, PASSWORD = "robot", "hunter2-not-logged"


def day(n: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=n)


# Tags of `team/app`, with their build days. main-1 is built after main-3.
APP_TAGS = {"1.0.0": 1, "1.1.0": 2, "v1.1.5": 3, "1.2.0-rc.1": 4, "2.0.0": 5,
            "main-3": 6, "main-1": 7, "latest": 8}
MANY_TAGS = [f"build-{i}" for i in range(9)]


def _push_fixtures(registry: Registry) -> None:
    pusher = Pusher(registry.host, registry.username, registry.password)
    for tag, n in APP_TAGS.items():
        pusher.push_image("team/app", tag, day(n))
    for i, tag in enumerate(MANY_TAGS):
        pusher.push_image("team/many", tag, day(20 + i))
    pusher.push_index("team/multi", "1.0", {"arm64": day(30), "amd64": day(31), "s390x": day(32)})


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = start_registry(tmp_path_factory.mktemp("registry-basic"), USER, PASSWORD)
    _push_fixtures(registry)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def anonymous_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = start_registry(tmp_path_factory.mktemp("registry-anon"))
    _push_fixtures(registry)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TokenServer]]:
    tokens = TokenServer.start(USER, PASSWORD)
    registry = start_token_registry(tmp_path_factory.mktemp("registry-token"), tokens)
    Pusher(registry.host, USER, PASSWORD).push_image("team/app", "1.0.0", day(1))
    Pusher(registry.host, USER, PASSWORD).push_image("team/app", "1.1.0", day(2))
    yield registry, tokens
    registry.stop()
    tokens.stop()


def docker_config(host: str, user: str = USER, password: str = PASSWORD) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {f"http://{host}/v2/": {"auth": auth}}})


def client_for(registry: Registry, password: str = PASSWORD, **kwargs: object) -> RegistryClient:
    credentials = CredentialStore.from_docker_config(docker_config(registry.host, password=password))
    return RegistryClient(credentials, plain_http_hosts={registry.host}, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def stand_in(handler: web.RequestHandler) -> AsyncIterator[str]:
    """An aiohttp registry stand-in on 127.0.0.1 answering every path with `handler`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# ── references and credentials ───────────────────────────────────────────────

@pytest.mark.parametrize("reference, registry, path, api_host", [
    ("nginx", "docker.io", "library/nginx", "registry-1.docker.io"),
    ("nginx:1.25", "docker.io", "library/nginx", "registry-1.docker.io"),
    ("bitnami/redis", "docker.io", "bitnami/redis", "registry-1.docker.io"),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", "registry-1.docker.io"),
    ("ghcr.io/x/y", "ghcr.io", "x/y", "ghcr.io"),
    ("registry.local:5000/a/b:v1", "registry.local:5000", "a/b", "registry.local:5000"),
    ("localhost/app@sha256:abc", "localhost", "app", "localhost"),
])
def test_image_references_name_their_registry_and_repository(
        reference: str, registry: str, path: str, api_host: str) -> None:
    repo = parse_image_repo(reference)
    assert (repo.registry, repo.path, repo.api_host) == (registry, path, api_host)


def test_docker_config_credentials_are_found_by_host_in_any_spelling() -> None:
    auth = base64.b64encode(b"me:pw").decode()
    store = CredentialStore.from_docker_config({"auths": {
        "https://index.docker.io/v1/": {"auth": auth},
        "ghcr.io": {"username": "bot", "password": "tok"},
        "https://host:5000": {"auth": auth},
        "empty.example": {},
    }})
    assert store.lookup("docker.io") is not None and store.lookup("docker.io").username == "me"  # type: ignore[union-attr]
    assert store.lookup("ghcr.io").password == "tok"  # type: ignore[union-attr]
    assert store.lookup("host:5000") is not None
    assert store.lookup("empty.example") is None
    assert "pw" not in repr(store) and "tok" not in repr(store.lookup("ghcr.io"))


# ── basic auth and anonymous access against docker-registry ─────────────────

async def test_tags_are_listed_with_basic_credentials_from_a_docker_config(basic_registry: Registry) -> None:
    async with client_for(basic_registry) as client:
        assert sorted(await client.list_tags(f"{basic_registry.host}/team/app")) == sorted(APP_TAGS)


async def test_dockerconfigjson_secret_with_username_and_password_works(basic_registry: Registry) -> None:
    secret = {"auths": {basic_registry.host: {"username": USER, "password": PASSWORD}}}
    async with RegistryClient(CredentialStore.from_docker_config(secret),
                              plain_http_hosts={basic_registry.host}) as client:
        assert "2.0.0" in await client.list_tags(f"{basic_registry.host}/team/app")


async def test_a_wrong_password_is_an_authentication_error_naming_image_and_remedy(
        basic_registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_for(basic_registry, password="wrong-password") as client:
        with pytest.raises(AuthenticationFailed) as error:
            await client.list_tags(f"{basic_registry.host}/team/app")
    message = str(error.value)
    assert "listing tags" in message and f"{basic_registry.host}/team/app" in message
    assert "credentials" in message and "wrong-password" not in message
    assert "wrong-password" not in caplog.text


async def test_no_credentials_for_a_protected_registry_is_an_authentication_error(
        basic_registry: Registry) -> None:
    async with RegistryClient(CredentialStore(), plain_http_hosts={basic_registry.host}) as client:
        with pytest.raises(AuthenticationFailed, match="anonymous request; add credentials"):
            await client.list_tags(f"{basic_registry.host}/team/app")


async def test_an_unknown_repository_is_not_found(anonymous_registry: Registry) -> None:
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}) as client:
        with pytest.raises(NotFound, match="no/such"):
            await client.list_tags(f"{anonymous_registry.host}/no/such")


async def test_a_registry_that_ignores_the_page_size_answers_in_one_page(anonymous_registry: Registry) -> None:
    # docker-registry 2.8 ignores `n` on tag lists (pagination came in distribution v3)
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}, page_size=2) as client:
        assert sorted(await client.list_tags(f"{anonymous_registry.host}/team/many")) == sorted(MANY_TAGS)
        assert client.requests["tags"] == 1


@pytest.mark.parametrize("absolute", [False, True])
async def test_tag_pages_are_followed_through_link_headers(absolute: bool) -> None:
    queries: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        n, last = int(request.query["n"]), request.query.get("last", "")
        page = [t for t in sorted(MANY_TAGS) if t > last][:n]
        headers = {}
        if page and page[-1] != max(MANY_TAGS):
            link = f"/v2/x/y/tags/list?last={page[-1]}&n={n}"
            headers["Link"] = f'<{request.url.origin()}{link}>; rel="next"' if absolute else f'<{link}>; rel="next"'
        return web.json_response({"name": "x/y", "tags": page}, headers=headers)

    async with stand_in(handler) as host, RegistryClient(plain_http_hosts={host}, page_size=2) as client:
        assert await client.list_tags(f"{host}/x/y") == sorted(MANY_TAGS)
        assert client.requests["tags"] == 5            # 9 tags, 2 a page
    assert queries[0] == {"n": "2"} and queries[-1] == {"last": "build-7", "n": "2"}


# ── request counts ───────────────────────────────────────────────────────────

@pytest.mark.parametrize("tag_filter", ["semver:~1.1", "alphabetical:main-*", "numerical:*"])
async def test_a_tag_ordered_scan_makes_one_tag_list_request_and_nothing_more(
        anonymous_registry: Registry, tag_filter: str) -> None:
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}) as client:
        tags = await client.scan(f"{anonymous_registry.host}/team/app", parse_filter(tag_filter))
        assert dict(client.requests) == {"tags": 1}
        assert all(t.created is None for t in tags)


async def test_semver_scan_picks_the_newest_version_in_range(anonymous_registry: Registry) -> None:
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}) as client:
        f = parse_filter("semver:~1.1")
        assert newest(f, await client.scan(f"{anonymous_registry.host}/team/app", f), "1.0.0") == "v1.1.5"


async def test_with_basic_auth_only_the_first_request_meets_a_challenge(basic_registry: Registry) -> None:
    async with client_for(basic_registry) as client:
        f = parse_filter("semver:>=1")
        await client.scan(f"{basic_registry.host}/team/app", f)
        assert client.requests["tags"] == 2          # 401 challenge, then with credentials
        await client.scan(f"{basic_registry.host}/team/app", f)
        assert dict(client.requests) == {"tags": 3}


async def test_a_glob_scan_reads_each_matching_image_once_in_its_life(basic_registry: Registry) -> None:
    cache = MetadataCache()
    image = f"{basic_registry.host}/team/app"
    f = parse_filter("glob:main-*")
    async with client_for(basic_registry, cache=cache) as client:
        await client.list_tags(image)                 # meet the auth challenge first
        client.requests.clear()
        tags = await client.scan(image, f)
        assert dict(client.requests) == {"tags": 1, "manifest_head": 2, "manifest_get": 2, "blob": 2}
        assert {t.tag: t.created for t in tags if t.created} == {"main-3": day(6), "main-1": day(7)}
        assert newest(f, tags, "main-3") == "main-1"    # by build time, not by name
        client.requests.clear()
        assert await client.scan(image, f) == tags
        assert dict(client.requests) == {"tags": 1}


async def test_an_expired_tag_mapping_is_rechecked_with_a_head_only(basic_registry: Registry) -> None:
    cache = MetadataCache(tag_ttl=timedelta(0))
    image = f"{basic_registry.host}/team/app"
    f = parse_filter("regexp:^main-")
    async with client_for(basic_registry, cache=cache) as client:
        await client.scan(image, f)
        client.requests.clear()
        await client.scan(image, f)
        assert dict(client.requests) == {"tags": 1, "manifest_head": 2}


async def test_the_cache_outlives_a_client(basic_registry: Registry) -> None:
    cache = MetadataCache()
    image = f"{basic_registry.host}/team/app"
    async with client_for(basic_registry, cache=cache) as client:
        await client.scan(image, parse_filter("*"))
    async with client_for(basic_registry, cache=cache) as client:
        tags = await client.scan(image, parse_filter("*"))
        assert set(client.requests) == {"tags"}
    assert TagInfo("latest", None) in tags            # `latest` is not even looked at
    assert newest(parse_filter("*"), tags, None) == "main-1"


async def test_a_scan_dates_the_current_tags_it_is_given_once_and_lists_tags_once(basic_registry: Registry) -> None:
    cache = MetadataCache()
    image = f"{basic_registry.host}/team/app"
    glob, semver = parse_filter("glob:1.*"), parse_filter("semver:~1.1")
    async with client_for(basic_registry, cache=cache) as client:
        await client.list_tags(image)                 # meet the auth challenge first
        client.requests.clear()
        # 2.0.0 runs, forced past the glob; 9.9.9 is not in the registry and costs nothing
        tags = await client.scan(image, glob, semver, current=["2.0.0", "9.9.9"])
        assert dict(client.requests) == {"tags": 1, "manifest_head": 4, "manifest_get": 4, "blob": 4}
        assert {t.tag: t.created for t in tags if t.created} == {
            "1.0.0": day(1), "1.1.0": day(2), "1.2.0-rc.1": day(4), "2.0.0": day(5)}
        assert newest(glob, tags, "2.0.0") is None      # every 1.* image is older than 2.0.0
        client.requests.clear()
        assert await client.scan(image, glob, current=["2.0.0"]) == tags
        assert dict(client.requests) == {"tags": 1}     # cached like the others


async def test_current_tags_cost_nothing_when_no_filter_orders_by_build_time(anonymous_registry: Registry) -> None:
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}) as client:
        tags = await client.scan(f"{anonymous_registry.host}/team/app", parse_filter("semver:~1.1"),
                                 current=["2.0.0"])
        assert dict(client.requests) == {"tags": 1}
        assert all(t.created is None for t in tags)


async def test_an_index_is_read_for_linux_amd64(anonymous_registry: Registry) -> None:
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}) as client:
        assert await client.image_created(f"{anonymous_registry.host}/team/multi", "1.0") == day(31)
        assert dict(client.requests) == {"manifest_head": 1, "manifest_get": 2, "blob": 1}


async def test_a_missing_tag_is_not_found(anonymous_registry: Registry) -> None:
    async with RegistryClient(plain_http_hosts={anonymous_registry.host}) as client:
        with pytest.raises(NotFound, match="checking tag 9.9.9"):
            await client.image_created(f"{anonymous_registry.host}/team/app", "9.9.9")


# ── bearer tokens ────────────────────────────────────────────────────────────

async def test_bearer_tokens_are_fetched_with_credentials_and_reused(
        token_registry: tuple[Registry, TokenServer], caplog: pytest.LogCaptureFixture) -> None:
    registry, tokens = token_registry
    caplog.set_level(logging.DEBUG)
    before = len(tokens.requests)
    async with client_for(registry) as client:
        image = f"{registry.host}/team/app"
        assert sorted(await client.list_tags(image)) == ["1.0.0", "1.1.0"]
        assert await client.image_created(image, "1.1.0") == day(2)
        assert await client.list_tags(image)
        assert client.requests["token"] == 1
        assert client.requests["tags"] == 3            # one 401 challenge, then the token is reused
    assert tokens.requests[before:] == ["repository:team/app:pull"]
    assert PASSWORD not in caplog.text and "Bearer ey" not in caplog.text


async def test_a_token_server_refusing_the_credentials_is_an_authentication_error(
        token_registry: tuple[Registry, TokenServer]) -> None:
    registry, _ = token_registry
    async with client_for(registry, password="nope") as client:
        with pytest.raises(AuthenticationFailed, match="token server .* refused the credentials"):
            await client.list_tags(f"{registry.host}/team/app")


# ── stand-ins: throttling, refusals, rate limit, unreachable ─────────────────

async def test_429_with_retry_after_in_seconds_and_as_a_date_is_honoured() -> None:
    seen: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if len(seen) == 2:
            when = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
            return web.Response(status=429, headers={"Retry-After": when})
        return web.json_response({"name": "x/y", "tags": ["1.0"]})

    async with stand_in(handler) as host, RegistryClient(plain_http_hosts={host}) as client:
        assert await client.list_tags(f"{host}/x/y") == ["1.0"]
    assert client.requests["tags"] == 3
    assert seen[1] - seen[0] >= 0.95
    assert seen[2] - seen[1] >= 0.9                   # an HTTP date has whole seconds


async def test_a_registry_that_keeps_throttling_is_rate_limited_after_bounded_attempts() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3600"})

    async with stand_in(handler) as host:
        async with RegistryClient(plain_http_hosts={host}, attempts=3, max_retry_after=0.05) as client:
            with pytest.raises(RateLimited, match="HTTP 429 .* after 3 attempts"):
                await client.list_tags(f"{host}/x/y")
    assert client.requests["tags"] == 3


async def test_503_is_retried_then_reported_as_unavailable() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=503)

    async with stand_in(handler) as host:
        async with RegistryClient(plain_http_hosts={host}, attempts=2, backoff_seconds=0.01) as client:
            with pytest.raises(RegistryUnavailable, match="HTTP 503") as error:
                await client.list_tags(f"{host}/x/y")
    assert not isinstance(error.value, RateLimited)


async def test_403_is_access_denied_with_what_to_do() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=403)

    async with stand_in(handler) as host, RegistryClient(plain_http_hosts={host}) as client:
        with pytest.raises(AccessDenied, match="pull access to x/y"):
            await client.list_tags(f"{host}/x/y")


async def test_requests_to_one_registry_are_rate_limited() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"name": "x/y", "tags": []})

    async with stand_in(handler) as host, RegistryClient(plain_http_hosts={host}, rate_limit_per_second=5) as client:
        start = time.monotonic()
        await asyncio.gather(*(client.list_tags(f"{host}/x/y") for _ in range(15)))
        elapsed = time.monotonic() - start
    assert client.requests["tags"] == 15
    assert elapsed >= 1.9                             # a burst of 5, then 5 a second


async def test_an_unreachable_registry_is_unavailable_naming_the_host() -> None:
    host = f"127.0.0.1:{free_port()}"
    async with RegistryClient(plain_http_hosts={host}, attempts=2, backoff_seconds=0.01) as client:
        with pytest.raises(RegistryUnavailable, match=f"cannot reach {host}"):
            await client.list_tags(f"{host}/x/y")
