"""The syncer's configuration: its sources, from flags or a YAML file.

Place in the flow: `command` parses the CLI and calls `from_args`; the result
(`SyncerConfig`, frozen) is all the syncer knows. One source from flags
(Flux v1's ``--git-url``, ``--git-branch``, ``--git-path``...), or several
from ``--config``, each its own sync set with its own marker and status.
Flags give the defaults of file sources.

File format::

    sources:
      - name: apps                  # DNS label; names the status ConfigMap
        url: ssh://git@example.com/org/repo.git
        branch: main                # default: --git-branch (master)
        paths: [clusters/prod]      # default: the whole tree
        pollInterval: 1m            # Go-style durations or seconds
        syncInterval: 5m
        garbageCollection: true
        garbageCollectionDryRun: false
        readonly: false             # marker in the cluster, no pushes
        syncTag: flux-sync
        syncSetName: ""             # default: Flux v1's hash of url+branch+paths
        defaultNamespace: ""        # default: --default-namespace
        sshKeyFile: /etc/fluxd/ssh/identity
        knownHostsFile: /etc/fluxd/ssh/known_hosts
        httpsCredentialsDir: /etc/git-https   # files username, password

What this module does NOT do: read credentials (only their paths), or touch
Git or the cluster.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from helm_operator import boundedyaml
from helm_operator.boundedyaml import Limits
from helm_operator.gitsync.plan import default_sync_set_name
from helm_operator.runtime.http import parse_listen

DEFAULT_POLL = 300.0  # Flux v1: --git-poll-interval=5m
DEFAULT_SYNC = 300.0  # Flux v1: --sync-interval=5m
DEFAULT_PORT = 3031
# kube-apiserver's --max-request-bytes default: a larger body is cut off (an SSL EOF, not an error)
DEFAULT_MAX_REQUEST_BYTES = 3 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class ConfigError(Exception):
    """The configuration is unusable; the message says which setting and why."""


def parse_duration(value: Any, setting: str) -> float:
    """Seconds from a number or a Go duration such as ``1m30s``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ConfigError(f"{setting}: {value!r} is not a duration (examples: 30s, 5m, 1h)") from None
            scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
            seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"{setting}: must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class SourceConfig:
    """One Git source: one sync set, one marker, one status."""

    name: str
    url: str
    branch: str = "master"
    paths: tuple[str, ...] = ()
    poll_interval: float = DEFAULT_POLL
    sync_interval: float = DEFAULT_SYNC
    gc: bool = False
    gc_dry: bool = False
    readonly: bool = False
    sync_tag: str = "flux-sync"
    sync_set: str = ""
    default_namespace: str = ""
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    https_credentials_dir: Path | None = None

    @property
    def sync_set_name(self) -> str:
        return self.sync_set or default_sync_set_name(self.url, self.branch, self.paths)


@dataclass(frozen=True)
class SyncerConfig:
    sources: tuple[SourceConfig, ...]
    kubeconfig: Path | None = None
    kube_context: str | None = None  # a kubeconfig context other than the current one
    namespace: str = "default"  # where status ConfigMaps (and read-only markers) live
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    workdir: Path = Path("/tmp/helm-operator-sync")
    once: bool = False
    webhook_token_file: Path | None = None        # POST /api/v1/sync(-git) need its token
    webhook_listen: tuple[str, int] | None = None  # the triggers' own address
    yaml_limits: Limits = Limits()  # every manifest file and this config
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # largest object sent to the API server
    api_unreachable_threshold: float = 120.0  # /healthz fails after the API server was unreachable so long
    loop_stall_threshold: float = 20.0        # ...or the event loop was blocked so long
    leader_elect: bool = False                # with several replicas, only the Lease holder syncs
    leader_election_name: str = "helm-operator-syncer"
    lease_duration: float = 15.0


def own_namespace() -> str:
    """$POD_NAMESPACE, the service account's namespace, or ``default``."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
    except OSError:
        return "default"


def _check(source: SourceConfig) -> SourceConfig:
    if not _NAME.match(source.name):
        raise ConfigError(f"source name {source.name!r}: use lower-case letters, digits and '-' "
                          "(at most 40), it names a ConfigMap")
    if not source.url:
        raise ConfigError(f"source {source.name}: no Git URL (--git-url or `url:`)")
    for attr in ("ssh_key_file", "known_hosts_file", "https_credentials_dir"):
        path = getattr(source, attr)
        if path is not None and not Path(path).exists():
            raise ConfigError(f"source {source.name}: {attr.replace('_', ' ')} {path} does not exist")
    return source


_FILE_KEYS: dict[str, tuple[str, Any]] = {
    "name": ("name", str), "url": ("url", str), "branch": ("branch", str),
    "paths": ("paths", lambda v: tuple(str(p) for p in ([v] if isinstance(v, str) else v))),
    "pollInterval": ("poll_interval", None), "syncInterval": ("sync_interval", None),
    "garbageCollection": ("gc", bool), "garbageCollectionDryRun": ("gc_dry", bool),
    "readonly": ("readonly", bool), "syncTag": ("sync_tag", str), "syncSetName": ("sync_set", str),
    "defaultNamespace": ("default_namespace", str),
    "sshKeyFile": ("ssh_key_file", Path), "knownHostsFile": ("known_hosts_file", Path),
    "httpsCredentialsDir": ("https_credentials_dir", Path),
}


def load_sources(path: Path, defaults: SourceConfig,
                 limits: Limits = Limits()) -> tuple[SourceConfig, ...]:
    """Sources from a YAML config file, unset keys taken from `defaults`."""
    try:
        doc = boundedyaml.load(path.read_bytes(), f"--config {path}", limits)
    except OSError as e:
        raise ConfigError(f"--config {path}: {e}") from e
    except boundedyaml.YamlError as e:
        raise ConfigError(str(e)) from None
    entries = (doc or {}).get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"--config {path}: expected a non-empty list under `sources:`")
    sources: list[SourceConfig] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"--config {path}: sources[{i}] must be a mapping")
        unknown = set(entry) - set(_FILE_KEYS)
        if unknown:
            raise ConfigError(f"--config {path}: sources[{i}] has unknown keys {sorted(unknown)}; "
                              f"known: {sorted(_FILE_KEYS)}")
        values: dict[str, Any] = {}
        for key, raw in entry.items():
            attr, convert = _FILE_KEYS[key]
            if convert is None:
                values[attr] = parse_duration(raw, f"sources[{i}].{key}")
            else:
                values[attr] = convert(raw) if raw is not None else None
        if "name" not in values:
            raise ConfigError(f"--config {path}: sources[{i}] needs a `name`")
        sources.append(_check(replace(defaults, **values)))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"--config {path}: source names must be unique, got {names}")
    return tuple(sources)


def from_args(args: argparse.Namespace) -> SyncerConfig:
    """The configuration from parsed `helm-operator sync` arguments."""
    limits = Limits(max_bytes=args.yaml_max_bytes, max_depth=args.yaml_max_depth, max_nodes=args.yaml_max_nodes)
    defaults = SourceConfig(
        name=args.source_name, url=args.git_url or "", branch=args.git_branch,
        paths=tuple(args.git_path or ()),
        poll_interval=parse_duration(args.git_poll_interval, "--git-poll-interval"),
        sync_interval=parse_duration(args.sync_interval, "--sync-interval"),
        gc=args.sync_garbage_collection, gc_dry=args.sync_garbage_collection_dry,
        readonly=args.git_readonly, sync_tag=args.git_sync_tag,
        default_namespace=args.default_namespace or "",
        ssh_key_file=args.git_ssh_key, known_hosts_file=args.git_known_hosts,
        https_credentials_dir=args.git_https_credentials_dir,
    )
    if args.config is not None:
        sources = load_sources(args.config, defaults, limits)
    elif args.git_url:
        sources = (_check(defaults),)
    else:
        raise ConfigError("no source: give --git-url or --config")
    webhook_listen = None
    if getattr(args, "webhook_listen", None):
        try:
            webhook_listen = parse_listen(args.webhook_listen, "--webhook-listen")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return SyncerConfig(
        sources=sources, kubeconfig=args.kubeconfig, kube_context=getattr(args, "context", None),
        namespace=args.namespace or own_namespace(),
        listen_host=args.listen_host, listen_port=args.listen_port,
        workdir=args.workdir, once=args.once,
        webhook_token_file=getattr(args, "webhook_token_file", None), webhook_listen=webhook_listen,
        yaml_limits=limits, max_request_bytes=args.max_request_bytes,
        api_unreachable_threshold=getattr(args, "api_unreachable_threshold", 120.0),
        loop_stall_threshold=getattr(args, "loop_stall_threshold", 20.0),
        leader_elect=getattr(args, "leader_elect", False),
        leader_election_name=getattr(args, "leader_election_name", "helm-operator-syncer"),
        lease_duration=getattr(args, "lease_duration", 15.0),
    )
