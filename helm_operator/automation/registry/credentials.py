"""Registry credentials by host, from docker ``config.json`` documents.

Place in the flow: the operator (`--docker-config`, `--registry-secret`
Secrets of type ``kubernetes.io/dockerconfigjson``) and the CLI
(`--docker-config`) fill a `CredentialStore`; `transport` looks a registry
up in it when a request needs basic credentials or a bearer token.

Credentials never appear in a repr or a log line. What this module does NOT
do: read files or Secrets (the callers do), or talk to a registry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from helm_operator.automation.imageref import DOCKER_HUB, DOCKER_HUB_ALIASES


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def registry_key(server: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``https://h:5000/x`` -> ``h:5000``."""
    host = urlsplit(server if "://" in server else f"//{server}").netloc or server
    host = host.lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


class CredentialStore:
    """Registry credentials by host, from docker config JSON documents."""

    def __init__(self, entries: Mapping[str, Credentials] | None = None) -> None:
        self._by_host: dict[str, Credentials] = {registry_key(k): v for k, v in (entries or {}).items()}

    @classmethod
    def from_docker_config(cls, config: str | bytes | Mapping[str, Any]) -> CredentialStore:
        """A docker ``config.json`` or ``.dockerconfigjson`` Secret value (JSON text or dict)."""
        store = cls()
        store.add_docker_config(config)
        return store

    def add(self, registry: str, username: str, password: str) -> None:
        self._by_host[registry_key(registry)] = Credentials(username, password)

    def add_docker_config(self, config: str | bytes | Mapping[str, Any]) -> None:
        """Merge ``auths`` entries (``auth`` base64 or ``username``/``password``)."""
        data = json.loads(config) if isinstance(config, (str, bytes)) else config
        auths = data.get("auths", {}) if isinstance(data, Mapping) else None
        if not isinstance(auths, Mapping):
            raise ValueError("docker config has no 'auths' object")
        for server, entry in auths.items():
            creds = _entry_credentials(entry)
            if creds is not None:
                self._by_host[registry_key(server)] = creds

    def lookup(self, registry: str) -> Credentials | None:
        return self._by_host.get(registry_key(registry))

    def __repr__(self) -> str:
        return f"CredentialStore(hosts={sorted(self._by_host)})"


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, Mapping):
        return None
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            raise ValueError("docker config 'auth' is not base64 'user:password'") from None
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None
