"""Drive the real `helm` v4 binary through pyhelm3, asynchronously.

Values go to helm on stdin (pyhelm3 logs command lines, never stdin), so no
value ever reaches a log. pyhelm3's `install_or_upgrade` appends
`--disable-openapi-validation` one character at a time and predates Helm 4's
renamed `--force-replace`, so the upgrade command is assembled here and run
through pyhelm3's command runner; `helm test` has no pyhelm3 wrapper either.

This module knows helm flags, not HelmRelease semantics: `release/` decides
what to call and with which options.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyhelm3.errors
from pyhelm3 import Command

from helm_operator.redaction import redact_text

log = logging.getLogger(__name__)


class HelmError(Exception):
    """A helm command failed. `message` is helm's own error text (stderr), URL credentials removed.

    helm quotes the URLs it fetched (``looks like "http://user:pw@host/" is
    not a valid chart repository``), so its stderr is redacted here, once.
    """

    def __init__(self, action: str, release: str, message: str) -> None:
        message, release = redact_text(message), redact_text(release)
        super().__init__(f"helm {action} of release {release} failed: {message}")
        self.action = action
        self.release = release
        self.message = message


class ReleaseNotFound(HelmError):
    """The release does not exist (yet, or any more)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One revision from `helm history`."""

    revision: int
    status: str
    chart: str
    app_version: str
    description: str


@dataclass(frozen=True)
class UpgradeOptions:
    """Flags of one `helm upgrade --install`."""

    timeout_seconds: int = 300
    wait: bool = False
    force: bool = False
    reset_values: bool = True
    skip_crds: bool = False
    max_history: int = 10
    disable_openapi_validation: bool = False
    description: str = ""
    force_conflicts: bool = False  # take back fields another field manager changed (drift repair)
    extra_args: Sequence[str] = field(default_factory=tuple)


def _stderr(e: pyhelm3.errors.Error) -> str:
    text = e.stderr.decode("utf-8", errors="replace").strip()
    return text.removeprefix("Error: ").strip() or f"exit code {e.returncode}"


class Helm:
    """Async helm calls against one cluster (one kubeconfig)."""

    def __init__(self, executable: str = "helm", kubeconfig: Path | None = None,
                 kubeapiserver: str | None = None, kubetoken: str | None = None) -> None:
        self._command = Command(executable=executable, kubeconfig=kubeconfig,
                                kubeapiserver=kubeapiserver, kubetoken=kubetoken)
        self.calls = 0  # every helm invocation, for the "no helm call on resync" measurement
        # Helm 4's default `--wait` strategy (kstatus); `legacy` is Helm 3's poller.
        self.wait_strategy = "watcher"

    async def _run(self, action: str, release: str, args: list[Any], stdin: bytes | None = None) -> bytes:
        self.calls += 1
        try:
            return await self._command.run([str(a) for a in args], stdin)
        except pyhelm3.errors.ReleaseNotFoundError as e:
            raise ReleaseNotFound(action, release, _stderr(e)) from e
        except pyhelm3.errors.Error as e:
            raise HelmError(action, release, _stderr(e)) from e

    async def history(self, release: str, namespace: str, max_revisions: int = 20) -> list[HistoryEntry]:
        """Newest last; raises ReleaseNotFound when the release has no history."""
        out = await self._run("history", release, ["history", release, "--namespace", namespace,
                                                   "--output", "json", "--max", max_revisions])
        return [
            HistoryEntry(revision=int(h["revision"]), status=h.get("status", "unknown"),
                         chart=h.get("chart", ""), app_version=h.get("app_version", ""),
                         description=h.get("description", ""))
            for h in json.loads(out or b"[]")
        ]

    async def manifest(self, release: str, namespace: str) -> str:
        out = await self._run("get manifest", release, ["get", "manifest", release, "--namespace", namespace])
        return out.decode("utf-8", errors="replace")

    async def upgrade_install(self, release: str, chart: Path | str, namespace: str,
                              values: dict[str, Any], opts: UpgradeOptions) -> int:
        """`helm upgrade --install`; returns the new revision number."""
        args: list[Any] = [
            "upgrade", release, str(chart), "--install", "--namespace", namespace,
            "--create-namespace", "--output", "json", "--values", "-",
            "--timeout", f"{opts.timeout_seconds}s", "--history-max", opts.max_history,
        ]
        if opts.wait:
            args += [f"--wait={self.wait_strategy}", "--wait-for-jobs"]
        if opts.force:
            args.append("--force-replace")
        args.append("--reset-values" if opts.reset_values else "--reuse-values")
        if opts.skip_crds:
            args.append("--skip-crds")
        if opts.disable_openapi_validation:
            args.append("--disable-openapi-validation")
        if opts.description:
            args += ["--description", opts.description]
        if opts.force_conflicts:
            args.append("--force-conflicts")
        args += list(opts.extra_args)
        out = await self._run("upgrade", release, args, json.dumps(values).encode())
        start = out.find(b"{")  # helm prints OCI pull lines before the JSON
        doc = json.loads(out[start:]) if start >= 0 else {}
        return int(doc.get("version", 0))

    async def rollback(self, release: str, namespace: str, revision: int | None, *,
                       timeout_seconds: int, wait: bool, force: bool, disable_hooks: bool,
                       max_history: int) -> None:
        args: list[Any] = ["rollback", release]
        if revision is not None:
            args.append(revision)
        args += ["--namespace", namespace, "--timeout", f"{timeout_seconds}s", "--history-max", max_history]
        if wait:
            args += [f"--wait={self.wait_strategy}", "--wait-for-jobs"]
        if force:
            args.append("--force-replace")
        if disable_hooks:
            args.append("--no-hooks")
        await self._run("rollback", release, args)

    async def test(self, release: str, namespace: str, timeout_seconds: int) -> None:
        await self._run("test", release, ["test", release, "--namespace", namespace,
                                          "--timeout", f"{timeout_seconds}s"])

    async def uninstall(self, release: str, namespace: str, timeout_seconds: int, wait: bool = False) -> None:
        args: list[Any] = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout_seconds}s"]
        if wait:
            args.append("--wait")
        await self._run("uninstall", release, args)

    async def dependency_update(self, chart_dir: Path) -> None:
        await self._run("dependency update", str(chart_dir), ["dependency", "update", str(chart_dir)])

    async def registry_login(self, host: str, username: str, password: str, registry_config: Path,
                             plain_http: bool = False) -> None:
        """Log in to an OCI registry; the password goes on stdin, never the command line."""
        args: list[Any] = ["registry", "login", host, "--username", username, "--password-stdin",
                           "--registry-config", str(registry_config)]
        if plain_http:
            args.append("--plain-http")
        await self._run("registry login", host, args, password.encode())

    async def pull_oci(self, chart_ref: str, version: str, destination: Path, registry_config: Path,
                       plain_http: bool = False) -> None:
        """`helm pull --untar` of an oci:// chart into `destination`."""
        args: list[Any] = ["pull", chart_ref, "--version", version, "--untar", "--untardir",
                           str(destination), "--registry-config", str(registry_config)]
        if plain_http:
            args.append("--plain-http")
        await self._run("pull", chart_ref, args)
