"""Registry access for the commands that read tags (`list-images`, `release`).

Place in the flow: the registry flags ─▶ **registryaccess** ─▶ a
`RegistryClient` with the credentials of ``--docker-config``. Commands that
never talk to a registry still accept the flags (old scripts pass them
everywhere) but do not list them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from helm_operator.automation.registry import CredentialStore, RegistryClient
from helm_operator.cli.errors import CommandError


def add_registry_flags(p: argparse.ArgumentParser, shown: bool = True) -> None:
    """``--registry-insecure-host`` and ``--docker-config``; accepted but not listed when not `shown`."""
    p.add_argument("--registry-insecure-host", action="append", default=[], metavar="HOST:PORT",
                   help="registry host:port spoken to over plain HTTP (repeatable)" if shown else argparse.SUPPRESS)
    p.add_argument("--docker-config", type=Path, default=None, metavar="PATH",
                   help="docker config.json with registry auths (default: anonymous)" if shown
                   else argparse.SUPPRESS)


def registry_client(args: argparse.Namespace) -> RegistryClient:
    store = CredentialStore()
    if args.docker_config is not None:
        try:
            store.add_docker_config(Path(args.docker_config).read_text())
        except (OSError, ValueError) as e:
            raise CommandError(f"cannot read --docker-config {args.docker_config}: {e}") from None
    return RegistryClient(store, plain_http_hosts=tuple(args.registry_insecure_host), attempts=3)
