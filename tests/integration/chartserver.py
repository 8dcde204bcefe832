"""Helm chart repositories for tests and the demo: package a chart directory
under another name/version, and serve a folder over HTTP on 127.0.0.1,
optionally only to requests with the right basic auth credentials."""

from __future__ import annotations

import base64
import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import yaml


def package_chart(helm: str, source: Path, version: str, dest: Path, name: str | None = None) -> Path:
    """`helm package` a copy of `source` with the given version (and name)."""
    work = dest / f".src-{name or source.name}-{version}"
    target = work / (name or source.name)
    shutil.copytree(source, target)
    chart_yaml = target / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    meta["version"] = version
    if name:
        meta["name"] = name
    chart_yaml.write_text(yaml.safe_dump(meta))
    subprocess.run([helm, "package", str(target), "-d", str(dest)], check=True, capture_output=True)
    shutil.rmtree(work)
    return dest / f"{meta['name']}-{version}.tgz"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _BasicAuthHandler(_QuietHandler):
    expected = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="charts"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def serve_directory(root: Path, auth: tuple[str, str] | None = None) -> tuple[str, http.server.ThreadingHTTPServer]:
    """Serve `root` on a free port (only with basic `auth` when given);
    returns (base URL, server to shut down)."""
    base: type[_QuietHandler] = _QuietHandler
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        base = type("AuthHandler", (_BasicAuthHandler,), {"expected": f"Basic {token}"})
    handler = functools.partial(base, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
