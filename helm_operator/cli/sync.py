"""`helm-operator sync` and `helm-operator sync-status`: flags to config, config to loop.

Place in the flow: the entry point of the syncer role. `register` adds the
subcommands to the CLI; `sync` builds `config.SyncerConfig`, connects to the
cluster and runs `syncer.Syncer` (or one pass per source with ``--once``);
`sync-status` prints the stored status of every source.

What this module does NOT do: any syncing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from helm_operator.gitsync.config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_PORT, ConfigError, from_args, own_namespace
from helm_operator.gitsync.mirror import GitError
from helm_operator.cli.settings import (
    add_health_flags, add_logging_flags, add_yaml_limit_flags, allow_api_json_depth, parse_duration, parse_size,
)
from helm_operator.runtime.logs import fields
from helm_operator.cli.settings import setup_logging

log = logging.getLogger("helm_operator.gitsync")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    p.add_argument("--namespace", default=None,
                   help="namespace of the sync status ConfigMaps (default: $POD_NAMESPACE, the pod's, or default)")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sync = subparsers.add_parser(
        "sync", help="apply the manifests of Git sources to the cluster, continuously",
        description="Keep the cluster equal to the manifests in Git (server-side apply, "
                    "kind rank order, optional garbage collection).")
    _add_common(sync)
    sync.add_argument("--git-url", help="Git remote (ssh://, git@host:path, https://, file://)")
    sync.add_argument("--git-branch", default="master")
    sync.add_argument("--git-path", action="append", default=[], help="path in the repository (repeatable)")
    sync.add_argument("--git-poll-interval", default="5m", help="how often to fetch (e.g. 30s, 5m)")
    sync.add_argument("--sync-interval", default="5m", help="full sync at least this often, even without new commits")
    sync.add_argument("--sync-garbage-collection", action="store_true",
                      help="delete objects this sync set created that are gone from Git")
    sync.add_argument("--sync-garbage-collection-dry", action="store_true",
                      help="only report what garbage collection would delete")
    sync.add_argument("--git-readonly", action="store_true",
                      help="never push: keep the sync marker in the cluster")
    sync.add_argument("--git-sync-tag", default="flux-sync", help="tag moved to the last applied commit")
    sync.add_argument("--git-ssh-key", type=Path, default=None, help="ssh private key file")
    sync.add_argument("--git-known-hosts", type=Path, default=None,
                      help="known_hosts file; hosts not in it are refused")
    sync.add_argument("--git-https-credentials-dir", type=Path, default=None,
                      help="directory with files username and password (a mounted Secret); "
                           "else $GIT_HTTPS_USERNAME/$GIT_HTTPS_PASSWORD")
    sync.add_argument("--source-name", default="default", help="name of the flag-defined source")
    sync.add_argument("--default-namespace", default=None,
                      help="namespace for namespaced objects without one (default: the kubeconfig "
                           "context's, else default)")
    sync.add_argument("--config", type=Path, default=None, help="YAML file with several sources")
    sync.add_argument("--listen", dest="listen_host", default="0.0.0.0")
    sync.add_argument("--listen-port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    sync.add_argument("--webhook-listen", default=None, metavar="HOST:PORT",
                      help="serve POST /api/v1/sync and /api/v1/sync-git on this address instead")
    sync.add_argument("--webhook-token-file", type=Path, default=None, metavar="PATH",
                      help="file holding a token the POST endpoints require as 'Authorization: Bearer "
                           "<token>' (read at start; /metrics and /healthz stay open)")
    sync.add_argument("--workdir", type=Path, default=Path("/tmp/helm-operator-sync"),
                      help="where Git mirrors are kept")
    sync.add_argument("--leader-elect", action="store_true",
                      help="with several replicas, only the one holding a coordination.k8s.io Lease (in "
                           "--namespace) applies and moves the sync marker; the others wait and take over")
    sync.add_argument("--leader-election-name", default="helm-operator-syncer", help="name of the Lease")
    sync.add_argument("--lease-duration", type=parse_duration, default=parse_duration("15s"),
                      help="how long a dead leader keeps the Lease before another replica takes over "
                           "(default 15s)")
    sync.add_argument("--once", action="store_true",
                      help="one pass per source, then exit (1 when any error was reported)")
    add_logging_flags(sync)
    add_health_flags(sync)
    sync.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)  # old --log-level debug
    add_yaml_limit_flags(sync, charts=False)
    sync.add_argument("--max-request-bytes", type=parse_size, default=DEFAULT_MAX_REQUEST_BYTES,
                      help="largest object sent to the API server, as JSON; match the server's "
                           "--max-request-bytes (default 3Mi, the server's default)")
    sync.set_defaults(handler=run_sync)

    st = subparsers.add_parser("sync-status", help="show the last sync of each source")
    _add_common(st)
    st.add_argument("-o", "--output", choices=("text", "json"), default="text")
    st.set_defaults(handler=run_sync_status)


def _cluster(kubeconfig: Path | None,  # type: ignore[no-untyped-def]
             max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
    from helm_operator.kube.apply import ClusterApi

    return ClusterApi.from_kubeconfig(kubeconfig, max_request_bytes=max_request_bytes)


def run_sync(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.verbose else args.log_level, args.log_format)
    allow_api_json_depth()
    try:
        config = from_args(args)
    except (ConfigError, GitError) as e:
        print(f"helm-operator sync: {e}", file=sys.stderr)
        return 2
    from helm_operator.gitsync.syncer import Syncer
    from helm_operator.kube.rest import kubeconfig_namespace
    from helm_operator.runtime.http import TokenFileError, read_token_file

    try:
        token = read_token_file(config.webhook_token_file) if config.webhook_token_file else None
    except TokenFileError as e:
        print(f"helm-operator sync: {e}", file=sys.stderr)
        return 2
    default_ns = args.default_namespace or kubeconfig_namespace(
        str(config.kubeconfig) if config.kubeconfig else None) or "default"
    try:
        syncer = Syncer(config, _cluster(config.kubeconfig, config.max_request_bytes), default_ns,
                        webhook_token=token)
    except GitError as e:
        print(f"helm-operator sync: {e}", file=sys.stderr)
        return 2

    if config.once:
        statuses = asyncio.run(syncer.sync_all_once())
        for s in statuses:
            for err in s.errors:
                log.error("%s %s: %s", err["file"], err["object"], err["reason"],
                          extra=fields(object=f"source/{s.source}", action="sync", error=err["reason"]))
        return 0 if all(s.ok for s in statuses) else 1
    try:
        asyncio.run(syncer.run())
    except KeyboardInterrupt:
        pass
    return 0


def run_sync_status(args: argparse.Namespace) -> int:
    from helm_operator.gitsync.status import format_text, read_all
    from helm_operator.kube.client import KubeError

    namespace = args.namespace or own_namespace()
    try:
        statuses = asyncio.run(read_all(_cluster(args.kubeconfig), namespace))
    except KubeError as e:
        print(f"helm-operator sync-status: {e}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        sys.stdout.write(format_text(statuses))
    return 0 if all(s.ok for s in statuses) else 1
