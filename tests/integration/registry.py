"""A real container registry on 127.0.0.1: Debian's `docker-registry`
(the CNCF distribution registry), with or without htpasswd basic auth.

Used for OCI chart sources and for image automation tests.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.cluster.localcluster import free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass
class Registry:
    host: str                       # "127.0.0.1:PORT"
    proc: subprocess.Popen[bytes]
    log: Path
    username: str | None = None
    password: str | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_registry(workdir: Path, username: str | None = None, password: str | None = None,
                   auth: dict | None = None) -> Registry:
    """Start a registry; htpasswd auth with `username`/`password`, or any
    `auth` section of the registry's config (e.g. token auth)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-only-secret"},
    }
    if auth is not None:
        config["auth"] = auth
    elif username and password:
        htpasswd = workdir / "htpasswd"
        out = subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True)
        htpasswd.write_text(out.stdout)
        config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
    cfg = workdir / "config.yml"
    cfg.write_text(yaml.safe_dump(config))
    log = workdir / "registry.log"
    proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(cfg)], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    reg = Registry(f"127.0.0.1:{port}", proc, log, username, password)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=1).close()
            break
        except urllib.error.HTTPError as e:
            if e.code == 401:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            reg.stop()
            raise RuntimeError("docker-registry did not start")
        time.sleep(0.1)
    return reg
