"""Drive the real `helm` v4 binary through pyhelm3, asynchronously.

Values go to helm on stdin (pyhelm3 logs command lines, never stdin), so no
value ever reaches a log. pyhelm3's `install_or_upgrade` appends
`--disable-openapi-validation` one character at a time and predates Helm 4's
renamed `--force-replace`, so the upgrade command is assembled here and run
through pyhelm3's command runner; `helm test` has no pyhelm3 wrapper either.

helm runs only to act (install/upgrade, test, rollback, uninstall, and
pulling charts): what a release is now is read from helm's storage through
the Kubernetes API (`helm.storage`, `release.observe`), never with `helm
history`, `helm status` or `helm get`. This module knows helm flags, not
HelmRelease semantics: `release/` decides what to call and with which
options. The actions take `impersonate`, a user name for helm's
``--kube-as-user`` (``system:serviceaccount:<ns>:<name>``): helm then acts
with that ServiceAccount's rights, and a first install does not try to
create the namespace (a ServiceAccount may not; it is its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyhelm3.errors
from pyhelm3 import Command

from helm_operator.helm.failures import FailureKind, classify
from helm_operator.helm import postrender
from helm_operator.helm.postrender import helm_environment, post_renderer_args
from helm_operator.helm.storage import ReleaseRecord, record_from_json
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

    @property
    def kind(self) -> FailureKind:
        """What kind of failure helm reported (see `helm.failures`)."""
        return classify(self.message)


class ReleaseNotFound(HelmError):
    """The release does not exist (yet, or any more)."""

    @property
    def kind(self) -> FailureKind:
        return FailureKind.OTHER


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
    labels: dict[str, str] = field(default_factory=dict)  # stored on the revision (see helm.storage)
    create_namespace: bool = True  # costs helm an apply of the Namespace on every call: only when needed
    antecedent: str = ""  # put on every object by the post-renderer (helm.postrender); none when empty
    extra_args: Sequence[str] = field(default_factory=tuple)


def _as_user(impersonate: str | None) -> tuple[str, ...]:
    """helm's impersonation flag; the API server adds a ServiceAccount's groups itself."""
    return ("--kube-as-user", impersonate) if impersonate else ()


def _stderr(e: pyhelm3.errors.Error) -> str:
    text = e.stderr.decode("utf-8", errors="replace").strip()
    # helm 4 logs structured lines (level=WARN msg=...) before its error: keep the error.
    lines = [line for line in text.splitlines() if not line.startswith("level=")]
    text = "\n".join(lines).strip() or text
    return redact_text(text.removeprefix("Error: ").strip()) or f"exit code {e.returncode}"


def _rendering_flags(opts: UpgradeOptions) -> list[str]:
    """The flags that shape the manifest, shared by `upgrade_install` and `template`, so the
    preview renders exactly what an upgrade would store (the antecedent post-renderer included)."""
    flags: list[str] = []
    if opts.skip_crds:
        flags.append("--skip-crds")
    if opts.disable_openapi_validation:
        flags.append("--disable-openapi-validation")
    if opts.labels:
        flags += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(opts.labels.items()))]
    if opts.antecedent and postrender.available():  # else release.ownership patches it on
        flags += post_renderer_args(opts.antecedent)
    return flags


class _Command(Command):  # type: ignore[misc]  # pyhelm3 is untyped
    """pyhelm3's command runner, minus the shell: helm is exec'd directly, so
    cancelling a call (shutdown past its grace period) signals helm itself and
    not only a `/bin/sh` in front of it. helm stays in the operator's process
    group: when the operator's container dies, helm dies with it."""

    async def run(self, command: list[str], input: bytes | None = None) -> bytes:  # noqa: A002
        argv = [self._executable, *command]
        if self._kubeconfig:
            argv += ["--kubeconfig", str(self._kubeconfig)]
        if self._kubecontext:
            argv += ["--kube-context", self._kubecontext]
        if self._kubeapiserver:
            argv += ["--kube-apiserver", self._kubeapiserver]
        if self._kubetoken:
            argv += ["--kube-token", self._kubetoken]
        if self._insecure_skip_tls_verify:
            argv.append("--kube-insecure-skip-tls-verify")
        log.debug("running helm %s", redact_text(" ".join(command)))  # values go on stdin, never here
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=helm_environment(os.environ))
        try:
            stdout, stderr = await proc.communicate(input)
        except asyncio.CancelledError:
            try:
                proc.send_signal(signal.SIGTERM)  # helm records the interrupted revision as failed
                await asyncio.wait_for(proc.wait(), 5)
            except (ProcessLookupError, TimeoutError):
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            raise
        if proc.returncode == 0:
            return stdout
        text = stderr.decode("utf-8", errors="replace").lower()
        error = (pyhelm3.errors.ReleaseNotFoundError if "release: not found" in text
                 else pyhelm3.errors.Error)
        raise error(proc.returncode or 1, stdout, stderr)


class Helm:
    """Async helm calls against one cluster (one kubeconfig)."""

    def __init__(self, executable: str = "helm", kubeconfig: Path | None = None,
                 kubeapiserver: str | None = None, kubetoken: str | None = None,
                 kubecontext: str | None = None) -> None:
        self._command = _Command(executable=executable, kubeconfig=kubeconfig, kubecontext=kubecontext,
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

    async def upgrade_install(self, release: str, chart: Path | str, namespace: str,
                              values: dict[str, Any], opts: UpgradeOptions, *,
                              impersonate: str | None = None) -> ReleaseRecord:
        """`helm upgrade --install`; returns the release helm made (with its manifest)."""
        args: list[Any] = [
            "upgrade", release, str(chart), "--install", "--namespace", namespace,
            *(("--create-namespace",) if opts.create_namespace and not impersonate else ()),
            "--output", "json", "--values", "-",
            "--timeout", f"{opts.timeout_seconds}s", "--history-max", opts.max_history,
            *_as_user(impersonate),
        ]
        if opts.wait:
            args += [f"--wait={self.wait_strategy}", "--wait-for-jobs"]
        if opts.force:
            args.append("--force-replace")
        args.append("--reset-values" if opts.reset_values else "--reuse-values")
        if opts.description:
            args += ["--description", opts.description]
        if opts.force_conflicts:
            args.append("--force-conflicts")
        args += _rendering_flags(opts)
        args += list(opts.extra_args)
        out = await self._run("upgrade", release, args, json.dumps(values).encode())
        start = out.find(b"{")  # helm prints OCI pull lines before the JSON
        doc = json.loads(out[start:]) if start >= 0 else {}
        return record_from_json(doc)

    async def template(self, release: str, chart: Path | str, namespace: str, values: dict[str, Any],
                       opts: UpgradeOptions, *, is_upgrade: bool, impersonate: str | None = None) -> str:
        """`helm template --dry-run=server` with the rendering flags of `upgrade_install`: the
        manifest (hooks left out, as helm stores it) that upgrade would apply.

        Server-side, so `.Capabilities` and `lookup` see the cluster as the upgrade
        would. `--reuse-values` has no template counterpart: the caller merges the
        previous values first. Values go on stdin.
        """
        args: list[Any] = [
            "template", release, str(chart), "--namespace", namespace, "--values", "-",
            "--dry-run=server", "--no-hooks", *_as_user(impersonate),
        ]
        if is_upgrade:
            args.append("--is-upgrade")
        args += _rendering_flags(opts)
        out = await self._run("template", release, args, json.dumps(values).encode())
        return out.decode("utf-8", errors="replace")

    async def rollback(self, release: str, namespace: str, revision: int | None, *,
                       timeout_seconds: int, wait: bool, force: bool, disable_hooks: bool,
                       max_history: int, impersonate: str | None = None) -> None:
        args: list[Any] = ["rollback", release]
        if revision is not None:
            args.append(revision)
        args += ["--namespace", namespace, "--timeout", f"{timeout_seconds}s", "--history-max", max_history,
                 *_as_user(impersonate)]
        if wait:
            args += [f"--wait={self.wait_strategy}", "--wait-for-jobs"]
        if force:
            args.append("--force-replace")
        if disable_hooks:
            args.append("--no-hooks")
        await self._run("rollback", release, args)

    async def test(self, release: str, namespace: str, timeout_seconds: int, *,
                   impersonate: str | None = None) -> None:
        await self._run("test", release, ["test", release, "--namespace", namespace,
                                          "--timeout", f"{timeout_seconds}s", *_as_user(impersonate)])

    async def uninstall(self, release: str, namespace: str, timeout_seconds: int, wait: bool = False, *,
                        impersonate: str | None = None) -> None:
        args: list[Any] = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout_seconds}s",
                           *_as_user(impersonate)]
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
