"""Helm chart repositories for tests and the demo: package a chart directory
under another name/version, and serve a folder over HTTP on 127.0.0.1."""

from __future__ import annotations

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


def serve_directory(root: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    """Serve `root` on a free port; returns (base URL, server to shut down)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
