"""HelmRepoCache against a real HTTP server on 127.0.0.1 serving index.yaml and .tgz charts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from helm_operator.chartsource import ChartFetchError, FetchedChart, HelmRepoCache

USER, PASSWORD = "robot", "s3cret-Pa55word"


# ---------------------------------------------------------------- helpers


def package_chart(name: str, version: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A chart .tgz as `helm package` lays it out: <name>/Chart.yaml, values.yaml, templates/."""
    files = {
        f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode(),
        f"{name}/values.yaml": b"replicas: 1\n",
        f"{name}/templates/configmap.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        **(extra or {}),
    }
    return make_tgz(files)


def make_tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Repo:
    """A Helm repository served over HTTP; `requests` records (path, Authorization header)."""

    server: ThreadingHTTPServer
    files: dict[str, bytes] = field(default_factory=dict)
    charts: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    delay: float = 0.0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def publish(self, name: str, version: str, *, data: bytes | None = None, url: str | None = None,
                digest: str | None | bool = True) -> bytes:
        data = data if data is not None else package_chart(name, version)
        filename = f"{name}-{version}.tgz"
        self.files[f"/{filename}"] = data
        entry: dict[str, object] = {"name": name, "version": version, "apiVersion": "v2",
                                    "urls": [url or filename]}
        if digest is True:
            entry["digest"] = hashlib.sha256(data).hexdigest()
        elif isinstance(digest, str):
            entry["digest"] = digest
        self.charts.setdefault(name, []).insert(0, entry)
        self.files["/index.yaml"] = yaml.safe_dump({"apiVersion": "v1", "entries": self.charts}).encode()
        return data


def serve(repo_factory: type[Repo] = Repo) -> Repo:
    repo: Repo

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            header = self.headers.get("Authorization")
            repo.requests.append((self.path, header))
            if repo.delay:
                threading.Event().wait(repo.delay)
            if repo.auth is not None:
                expected = "Basic " + base64.b64encode(f"{repo.auth[0]}:{repo.auth[1]}".encode()).decode()
                if header != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if self.path in repo.redirects:
                self.send_response(302)
                self.send_header("Location", repo.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = repo.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    repo = repo_factory(server=server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return repo


@pytest.fixture
def repo() -> Iterator[Repo]:
    r = serve()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def other_host() -> Iterator[Repo]:
    r = serve()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest_asyncio.fixture(loop_scope="function")
async def cache(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with HelmRepoCache(tmp_path / "cache") as c:
        yield c


# ------------------------------------------------------------------ tests


async def test_fetch_unpacks_the_chart_and_returns_the_directory_holding_chart_yaml(
    repo: Repo, cache: HelmRepoCache, tmp_path: Path
) -> None:
    repo.publish("podinfo", "6.5.0")

    fetched = await cache.fetch(repo.url, "podinfo", "6.5.0", None)

    assert isinstance(fetched, FetchedChart)
    assert fetched.revision == "6.5.0"
    assert (fetched.path / "Chart.yaml").read_text().startswith("apiVersion: v2\nname: podinfo")
    assert (fetched.path / "templates" / "configmap.yaml").is_file()
    assert fetched.path == cache.chart_dir(repo.url, "podinfo", "6.5.0") / "podinfo"
    assert fetched.path.is_relative_to(tmp_path / "cache" / "helm")
    assert repo.paths() == ["/index.yaml", "/podinfo-6.5.0.tgz"]


async def test_a_chart_version_already_unpacked_is_reused_without_any_http_request(
    repo: Repo, tmp_path: Path
) -> None:
    repo.publish("podinfo", "6.5.0")
    async with HelmRepoCache(tmp_path / "cache", index_ttl=0) as first:
        fetched = await first.fetch(repo.url, "podinfo", "6.5.0", None)
        requests_after_first = len(repo.requests)
        again = await first.fetch(repo.url + "/", "podinfo", "6.5.0", None)
    async with HelmRepoCache(tmp_path / "cache", index_ttl=0) as after_restart:
        shared = await after_restart.fetch(repo.url, "podinfo", "6.5.0", None)

    assert again == fetched == shared
    assert len(repo.requests) == requests_after_first == 2


async def test_a_repository_with_basic_auth_refuses_a_fetch_without_credentials_with_a_clear_error(
    repo: Repo, cache: HelmRepoCache
) -> None:
    repo.auth = (USER, PASSWORD)
    repo.publish("private", "1.0.0")

    with pytest.raises(ChartFetchError) as err:
        await cache.fetch(repo.url, "private", "1.0.0", None)

    assert err.value.status == 401
    assert f"{repo.url}/index.yaml" in str(err.value)
    assert "HTTP 401" in str(err.value)
    assert "chartPullSecret" in str(err.value)


async def test_a_repository_with_basic_auth_serves_the_chart_with_credentials(
    repo: Repo, cache: HelmRepoCache
) -> None:
    repo.auth = (USER, PASSWORD)
    repo.publish("private", "1.0.0")

    fetched = await cache.fetch(repo.url, "private", "1.0.0", (USER, PASSWORD))

    assert (fetched.path / "Chart.yaml").is_file()
    assert all(header is not None for _, header in repo.requests)


async def test_a_chart_fetched_with_credentials_is_never_served_to_a_fetch_without_them(
    repo: Repo, cache: HelmRepoCache
) -> None:
    """Tenant A's credentials unpack the chart; tenant B (none, or wrong ones)
    is sent to the server, which refuses it, however often A fetched."""
    repo.auth = (USER, PASSWORD)
    repo.publish("private", "1.0.0")
    fetched = await cache.fetch(repo.url, "private", "1.0.0", (USER, PASSWORD))
    assert await cache.fetch(repo.url, "private", "1.0.0", (USER, PASSWORD)) == fetched

    for other in (None, (USER, "wrong-password")):
        with pytest.raises(ChartFetchError) as err:
            await cache.fetch(repo.url, "private", "1.0.0", other)
        assert err.value.status == 401
        assert not cache.chart_dir(repo.url, "private", "1.0.0", other).exists()
    assert cache.chart_dir(repo.url, "private", "1.0.0", (USER, PASSWORD)).is_dir()


async def test_wrong_credentials_are_reported_without_showing_the_password(
    repo: Repo, cache: HelmRepoCache
) -> None:
    repo.auth = (USER, PASSWORD)
    repo.publish("private", "1.0.0")

    with pytest.raises(ChartFetchError) as err:
        await cache.fetch(repo.url, "private", "1.0.0", (USER, "wrong-password"))

    assert "credentials were refused" in str(err.value)
    assert "wrong-password" not in str(err.value)


async def test_credentials_written_into_the_repository_url_are_used_and_never_shown(
    repo: Repo, cache: HelmRepoCache
) -> None:
    repo.auth = (USER, PASSWORD)
    repo.publish("private", "1.0.0")
    host = repo.url.removeprefix("http://")

    fetched = await cache.fetch(f"http://{USER}:{PASSWORD}@{host}", "private", "1.0.0", None)
    with pytest.raises(ChartFetchError) as err:
        await cache.fetch(f"http://{USER}:{PASSWORD}@{host}", "private", "9.9.9", None)

    assert (fetched.path / "Chart.yaml").is_file()
    assert PASSWORD not in str(err.value) and USER not in str(err.value)
    assert repo.url in str(err.value)


async def test_a_missing_version_lists_up_to_five_available_versions(repo: Repo, cache: HelmRepoCache) -> None:
    for minor in range(7):
        repo.publish("podinfo", f"6.{minor}.0")

    with pytest.raises(ChartFetchError) as err:
        await cache.fetch(repo.url, "podinfo", "7.0.0", None)

    assert str(err.value) == (
        f"chart podinfo version 7.0.0 not found in {repo.url}; "
        "available: 6.6.0, 6.5.0, 6.4.0, 6.3.0, 6.2.0, ..."
    )


async def test_a_missing_chart_name_is_reported(repo: Repo, cache: HelmRepoCache) -> None:
    repo.publish("podinfo", "6.5.0")

    with pytest.raises(ChartFetchError, match="has no chart named nginx"):
        await cache.fetch(repo.url, "nginx", "1.0.0", None)


async def test_a_digest_mismatch_is_refused_and_nothing_is_cached(
    repo: Repo, cache: HelmRepoCache, tmp_path: Path
) -> None:
    repo.publish("podinfo", "6.5.0", digest="0" * 64)

    with pytest.raises(ChartFetchError, match="does not match the digest"):
        await cache.fetch(repo.url, "podinfo", "6.5.0", None)

    assert not cache.chart_dir(repo.url, "podinfo", "6.5.0").exists()
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name != ".access-key"]
    assert leftovers == []


async def test_a_chart_without_digest_in_the_index_is_accepted(repo: Repo, cache: HelmRepoCache) -> None:
    repo.publish("podinfo", "6.5.0", digest=None)

    fetched = await cache.fetch(repo.url, "podinfo", "6.5.0", None)

    assert (fetched.path / "values.yaml").read_text() == "replicas: 1\n"


async def test_an_archive_member_escaping_the_target_directory_is_refused(
    repo: Repo, cache: HelmRepoCache, tmp_path: Path
) -> None:
    evil = make_tgz({"evil/Chart.yaml": b"name: evil\n", "evil/../../../../escaped.txt": b"owned\n"})
    repo.publish("evil", "1.0.0", data=evil)

    with pytest.raises(ChartFetchError, match="escapes the chart directory"):
        await cache.fetch(repo.url, "evil", "1.0.0", None)

    assert not list(tmp_path.rglob("escaped.txt"))


async def test_an_archive_without_chart_yaml_is_refused(repo: Repo, cache: HelmRepoCache) -> None:
    repo.publish("empty", "1.0.0", data=make_tgz({"empty/README.md": b"hi\n"}))

    with pytest.raises(ChartFetchError, match="holds no Chart.yaml"):
        await cache.fetch(repo.url, "empty", "1.0.0", None)


async def test_index_yaml_is_cached_for_the_ttl(repo: Repo, cache: HelmRepoCache) -> None:
    repo.publish("a", "1.0.0")
    repo.publish("b", "1.0.0")

    await cache.fetch(repo.url, "a", "1.0.0", None)
    await cache.fetch(repo.url, "b", "1.0.0", None)

    assert repo.paths().count("/index.yaml") == 1


async def test_index_yaml_is_fetched_again_once_the_ttl_has_passed(repo: Repo, tmp_path: Path) -> None:
    repo.publish("a", "1.0.0")
    repo.publish("b", "1.0.0")
    async with HelmRepoCache(tmp_path / "cache", index_ttl=0) as cache:
        await cache.fetch(repo.url, "a", "1.0.0", None)
        await cache.fetch(repo.url, "b", "1.0.0", None)

    assert repo.paths().count("/index.yaml") == 2


async def test_a_version_published_after_the_index_was_cached_is_found_at_once(
    repo: Repo, cache: HelmRepoCache
) -> None:
    repo.publish("podinfo", "6.5.0")
    await cache.fetch(repo.url, "podinfo", "6.5.0", None)
    repo.publish("podinfo", "6.6.0")

    fetched = await cache.fetch(repo.url, "podinfo", "6.6.0", None)

    assert fetched.revision == "6.6.0"
    assert repo.paths().count("/index.yaml") == 2


async def test_concurrent_fetches_of_one_chart_download_it_once(repo: Repo, cache: HelmRepoCache) -> None:
    repo.publish("podinfo", "6.5.0")
    repo.delay = 0.05

    results = await asyncio.gather(*(cache.fetch(repo.url, "podinfo", "6.5.0", None) for _ in range(8)))

    assert len(set(results)) == 1
    assert repo.paths() == ["/index.yaml", "/podinfo-6.5.0.tgz"]


async def test_relative_chart_urls_resolve_against_a_repository_with_a_path(
    repo: Repo, cache: HelmRepoCache
) -> None:
    data = package_chart("podinfo", "6.5.0")
    repo.files["/stable/charts/podinfo-6.5.0.tgz"] = data
    index = {"apiVersion": "v1", "entries": {"podinfo": [
        {"name": "podinfo", "version": "6.5.0", "urls": ["charts/podinfo-6.5.0.tgz"],
         "digest": hashlib.sha256(data).hexdigest()}]}}
    repo.files["/stable/index.yaml"] = yaml.safe_dump(index).encode()

    fetched = await cache.fetch(repo.url + "/stable/", "podinfo", "6.5.0", None)

    assert (fetched.path / "Chart.yaml").is_file()
    assert repo.paths() == ["/stable/index.yaml", "/stable/charts/podinfo-6.5.0.tgz"]


async def test_credentials_are_not_sent_to_a_chart_url_on_another_host(
    repo: Repo, other_host: Repo, cache: HelmRepoCache
) -> None:
    repo.auth = (USER, PASSWORD)
    data = package_chart("podinfo", "6.5.0")
    other_host.files["/podinfo-6.5.0.tgz"] = data
    repo.publish("podinfo", "6.5.0", data=data, url=f"{other_host.url}/podinfo-6.5.0.tgz")

    fetched = await cache.fetch(repo.url, "podinfo", "6.5.0", (USER, PASSWORD))

    assert (fetched.path / "Chart.yaml").is_file()
    assert other_host.requests == [("/podinfo-6.5.0.tgz", None)]


async def test_credentials_are_not_forwarded_when_a_download_redirects_to_another_host(
    repo: Repo, other_host: Repo, cache: HelmRepoCache
) -> None:
    repo.auth = (USER, PASSWORD)
    data = repo.publish("podinfo", "6.5.0")
    other_host.files["/blobs/podinfo.tgz"] = data
    repo.redirects["/podinfo-6.5.0.tgz"] = f"{other_host.url}/blobs/podinfo.tgz"

    fetched = await cache.fetch(repo.url, "podinfo", "6.5.0", (USER, PASSWORD))

    assert (fetched.path / "Chart.yaml").is_file()
    assert other_host.requests == [("/blobs/podinfo.tgz", None)]


async def test_a_missing_index_reports_the_url_and_status(repo: Repo, cache: HelmRepoCache) -> None:
    with pytest.raises(ChartFetchError) as err:
        await cache.fetch(repo.url + "/nothing-here", "podinfo", "6.5.0", None)

    assert err.value.status == 404
    assert f"GET {repo.url}/nothing-here/index.yaml failed: HTTP 404" in str(err.value)


async def test_an_index_that_is_not_yaml_is_reported(repo: Repo, cache: HelmRepoCache) -> None:
    repo.files["/index.yaml"] = b"entries: [unclosed\n  - : :\n"

    with pytest.raises(ChartFetchError, match="is not valid YAML"):
        await cache.fetch(repo.url, "podinfo", "6.5.0", None)


async def test_an_html_page_instead_of_an_index_is_reported(repo: Repo, cache: HelmRepoCache) -> None:
    repo.files["/index.yaml"] = b"<html><body>Welcome</body></html>\n"

    with pytest.raises(ChartFetchError, match="is not a Helm repository index"):
        await cache.fetch(repo.url, "podinfo", "6.5.0", None)


async def test_an_unreachable_server_is_reported_with_its_url(cache: HelmRepoCache) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on that port any more

    with pytest.raises(ChartFetchError) as err:
        await cache.fetch(f"http://{USER}:{PASSWORD}@127.0.0.1:{port}", "podinfo", "6.5.0", None)

    assert f"GET http://127.0.0.1:{port}/index.yaml failed" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert err.value.status is None


async def test_a_version_string_is_compared_exactly(repo: Repo, cache: HelmRepoCache) -> None:
    repo.publish("podinfo", "1.10")

    fetched = await cache.fetch(repo.url, "podinfo", "1.10", None)

    assert fetched.revision == "1.10"
    with pytest.raises(ChartFetchError, match="available: 1.10"):
        await cache.fetch(repo.url, "podinfo", "1.1", None)


@pytest.mark.parametrize("repository", ["oci://ghcr.io/org/charts", "ftp://example.com/charts", "charts"])
async def test_a_repository_url_that_is_not_http_is_refused(cache: HelmRepoCache, repository: str) -> None:
    with pytest.raises(ChartFetchError, match=repository.split("/")[0]):
        await cache.fetch(repository, "podinfo", "6.5.0", None)


@pytest.mark.parametrize("name,version", [("../../etc", "1.0.0"), ("podinfo", "../1.0.0"), ("", "1.0.0")])
async def test_names_that_would_escape_the_cache_are_refused(
    repo: Repo, cache: HelmRepoCache, name: str, version: str
) -> None:
    with pytest.raises(ChartFetchError, match="invalid chart"):
        await cache.fetch(repo.url, name, version, None)
    assert repo.requests == []


async def test_an_index_with_an_alias_bomb_is_refused_naming_the_url_and_the_flag(repo: Repo,
                                                                                   cache: HelmRepoCache) -> None:
    lines = ["apiVersion: v1", "entries:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    repo.files["/index.yaml"] = ("\n".join(lines) + "\n").encode()

    with pytest.raises(ChartFetchError) as err:
        await asyncio.wait_for(cache.fetch(repo.url, "podinfo", "6.5.0", None), timeout=5)

    assert str(err.value).startswith(f"{repo.url}/index.yaml: more than 10,000,000 nodes")
    assert "--chart-yaml-max-nodes" in str(err.value)


async def test_an_index_larger_than_the_chart_yaml_limit_stops_the_download(repo: Repo, tmp_path: Path) -> None:
    from helm_operator.boundedyaml import DEFAULT_LIMITS
    from dataclasses import replace

    repo.files["/index.yaml"] = b"apiVersion: v1\nentries: {}\n# " + b"x" * (3 * 2**20) + b"\n"
    limits = replace(DEFAULT_LIMITS.charts, max_bytes=2**20)
    async with HelmRepoCache(tmp_path / "small", yaml_limits=limits) as small:
        with pytest.raises(ChartFetchError) as err:
            await small.fetch(repo.url, "podinfo", "6.5.0", None)

    assert "response larger than 1 MiB; refusing it (--chart-yaml-max-bytes raises the limit)" in str(err.value)
