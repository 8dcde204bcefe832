"""`helm-operator sync` and `helm-operator sync-status`: flags to config, config to loop.

Place in the flow: the entry point of the syncer role. `register` adds the
subcommands to the CLI; `sync` builds `config.SyncerConfig`, connects to the
cluster and runs `syncer.Syncer` (or one pass per source with ``--once``);
`sync-status` prints the stored status of every source (`-o text|table|json|yaml`).
Both take the cluster flags of `clusterargs`; `sync` shares ``--listen
HOST:PORT``, the logging and the health flags with `run` (`settings.add_process_flags`)
and keeps its old ``--listen HOST --listen-port N`` and ``-v``, unlisted.

What this module does NOT do: any syncing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from helm_operator.cli.clusterargs import (
    add_cluster_flags, add_output_flag, connect, dump, one_line_errors, startup_errors, table,
)
from helm_operator.cli.parsing import USAGE_ERROR, address, duration, hidden, size
from helm_operator.cli.settings import add_process_flags, add_yaml_limit_flags, allow_api_json_depth, setup_logging
from helm_operator.gitsync.config import (
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_PORT, ConfigError, SyncerConfig, from_args, own_namespace,
)
from helm_operator.gitsync.mirror import GitError
from helm_operator.gitsync.status import SyncStatus
from helm_operator.runtime.logs import fields

log = logging.getLogger("helm_operator.gitsync")


# Where the syncer keeps its status, and so where sync-status looks: the same for both.
NAMESPACE_ORDER = "default: $POD_NAMESPACE, else the context's namespace, else the pod's, else default"


def status_namespace(args: argparse.Namespace, context_namespace: str | None) -> str:
    """-n, else $POD_NAMESPACE (the chart sets it), else the kubeconfig context's, else the pod's or default."""
    return args.namespace or os.environ.get("POD_NAMESPACE") or context_namespace or own_namespace()


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sync = subparsers.add_parser(
        "sync", help="apply the manifests of Git sources to the cluster, continuously",
        description="Keep the cluster equal to the manifests in Git (server-side apply, kind rank order, "
                    "optional garbage collection). Runs until SIGTERM; with --once one pass per source. "
                    "Exit code 0 after a clean stop or a clean --once pass, 1 when a --once pass reported "
                    "errors or it cannot start (e.g. no usable kubeconfig: one line on stderr says what to "
                    "do), 2 for a flag or source configuration it cannot use.")
    add_cluster_flags(sync, namespace_help="namespace of the sync status ConfigMaps and the Lease "
                                           f"({NAMESPACE_ORDER})",
                      kubeconfig_help="kubeconfig file (default: $KUBECONFIG, else the in-cluster config, "
                                      "else ~/.kube/config)")
    sync.add_argument("--git-url", metavar="URL", help="Git remote (ssh://, git@host:path, https://, file://)")
    sync.add_argument("--git-branch", default="master", metavar="BRANCH", help="branch to apply (default master)")
    sync.add_argument("--git-path", action="append", default=[], metavar="PATH",
                      help="path in the repository (repeatable; default: the whole repository)")
    sync.add_argument("--git-poll-interval", type=duration, default=duration("5m"), metavar="DURATION",
                      help="how often to fetch (e.g. 30s, 5m; default 5m)")
    sync.add_argument("--sync-interval", type=duration, default=duration("5m"), metavar="DURATION",
                      help="full sync at least this often, even without new commits (default 5m)")
    sync.add_argument("--sync-garbage-collection", action="store_true",
                      help="delete objects this sync set created that are gone from Git")
    sync.add_argument("--sync-garbage-collection-dry", action="store_true",
                      help="only report what garbage collection would delete")
    sync.add_argument("--git-readonly", action="store_true",
                      help="never push: keep the sync marker in the cluster")
    sync.add_argument("--git-sync-tag", default="flux-sync", metavar="TAG",
                      help="tag moved to the last applied commit (default flux-sync)")
    sync.add_argument("--git-ssh-key", type=Path, default=None, metavar="PATH", help="ssh private key file")
    sync.add_argument("--git-known-hosts", type=Path, default=None, metavar="PATH",
                      help="known_hosts file; hosts not in it are refused")
    sync.add_argument("--git-https-credentials-dir", type=Path, default=None, metavar="DIR",
                      help="directory with files username and password (a mounted Secret); "
                           "else $GIT_HTTPS_USERNAME/$GIT_HTTPS_PASSWORD")
    sync.add_argument("--source-name", default="default", metavar="NAME",
                      help="name of the flag-defined source (default: default)")
    sync.add_argument("--default-namespace", default=None, metavar="NAMESPACE",
                      help="namespace for namespaced objects without one (default: the kubeconfig "
                           "context's, else default)")
    sync.add_argument("--config", type=Path, default=None, metavar="PATH", help="YAML file with several sources")
    sync.add_argument("--webhook-listen", default=None, type=address, metavar="HOST:PORT",
                      help="serve POST /api/v1/sync and /api/v1/sync-git on this address instead")
    sync.add_argument("--webhook-token-file", type=Path, default=None, metavar="PATH",
                      help="file holding a token the POST endpoints require as 'Authorization: Bearer "
                           "<token>' (read at start; /metrics and /healthz stay open)")
    sync.add_argument("--workdir", type=Path, default=Path("/tmp/helm-operator-sync"), metavar="DIR",
                      help="where Git mirrors are kept (default /tmp/helm-operator-sync)")
    sync.add_argument("--leader-elect", action="store_true",
                      help="with several replicas, only the one holding a coordination.k8s.io Lease (in "
                           "--namespace) applies and moves the sync marker; the others wait and take over")
    sync.add_argument("--leader-election-name", default="helm-operator-syncer", metavar="NAME",
                      help="name of the Lease (default helm-operator-syncer)")
    sync.add_argument("--lease-duration", type=duration, default=duration("15s"), metavar="DURATION",
                      help="how long a dead leader keeps the Lease before another replica takes over "
                           "(default 15s)")
    sync.add_argument("--once", action="store_true",
                      help="one pass per source, then exit (1 when any error was reported)")
    sync.add_argument("--max-request-bytes", type=size, default=DEFAULT_MAX_REQUEST_BYTES, metavar="SIZE",
                      help="largest object sent to the API server, as JSON; match the server's "
                           "--max-request-bytes (default 3Mi, the server's default)")
    add_yaml_limit_flags(sync, charts=False)
    add_process_flags(sync, port=DEFAULT_PORT, serves="/metrics, /healthz, /readyz and the POST sync triggers",
                      old_listen_port=True)
    hidden(sync, "-v", "--verbose", action="store_true")  # the old spelling of --log-level debug
    sync.set_defaults(handler=run_sync)

    st = subparsers.add_parser(
        "sync-status", help="show the last sync of each source",
        description="The last pass of each Git source as the syncer stored it (one ConfigMap per source). "
                    "Exit code 0 when every source synced cleanly, 1 when one reported errors or the "
                    "status cannot be read (one line on stderr says why).")
    add_cluster_flags(st, namespace_help=f"namespace the syncer keeps its status in ({NAMESPACE_ORDER})")
    add_output_flag(st, ("text", "table", "json", "yaml"), "text", tables=True)
    st.set_defaults(handler=run_sync_status)


def _cluster(config: SyncerConfig):  # type: ignore[no-untyped-def]
    from helm_operator.kube.apply import ClusterApi

    return ClusterApi.from_kubeconfig(config.kubeconfig, context=config.kube_context,
                                      max_request_bytes=config.max_request_bytes)


@startup_errors("sync")
def run_sync(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.verbose else args.log_level, args.log_format)
    allow_api_json_depth()
    from helm_operator.kube.rest import kubeconfig_namespace

    kubeconfig = str(args.kubeconfig) if args.kubeconfig else os.environ.get("KUBECONFIG") or None
    context_namespace = kubeconfig_namespace(kubeconfig, args.context)
    args.namespace = status_namespace(args, context_namespace)
    try:
        config = from_args(args)
    except (ConfigError, GitError) as e:
        print(f"helm-operator sync: {e}", file=sys.stderr)
        return USAGE_ERROR
    from helm_operator.gitsync.syncer import Syncer
    from helm_operator.runtime.http import TokenFileError, read_token_file

    try:
        token = read_token_file(config.webhook_token_file) if config.webhook_token_file else None
    except TokenFileError as e:
        print(f"helm-operator sync: {e}", file=sys.stderr)
        return USAGE_ERROR
    cluster = _cluster(config)  # before anything else: a kubeconfig it cannot use is one line, exit 1
    default_ns = args.default_namespace or context_namespace or "default"
    try:
        syncer = Syncer(config, cluster, default_ns, webhook_token=token)
    except GitError as e:
        print(f"helm-operator sync: {e}", file=sys.stderr)
        return USAGE_ERROR

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


STATUS_COLUMNS = ("SOURCE", "READY", "COMMIT", "SYNCED", "APPLIED", "UNCHANGED", "FAILED", "DELETED", "MESSAGE")


def status_row(s: SyncStatus) -> list[str]:
    """One source as a row of `sync-status -o table`: the message is why it is not ready, if it is not."""
    first = s.errors[0] if s.errors else None
    message = s.pass_error or (f"{first['file']} {first.get('object') or ''}: {first['reason']}" if first else "")
    if first and len(s.errors) > 1:
        message += f" (and {len(s.errors) - 1} more)"
    return [s.source, str(s.ok), s.commit[:12] or "-", s.synced_at or "-", str(s.applied), str(s.unchanged),
            str(s.failed), str(s.deleted), message]


@one_line_errors("sync-status")
def run_sync_status(args: argparse.Namespace) -> int:
    from helm_operator.gitsync.status import format_text, read_all

    cluster = connect(args, own_namespace)   # its namespace: -n, else the context's, else own_namespace()
    namespace = args.namespace or os.environ.get("POD_NAMESPACE") or cluster.namespace  # status_namespace's order
    statuses = asyncio.run(read_all(cluster.kube.cluster, namespace))
    if args.output in ("json", "yaml"):
        sys.stdout.write(dump([asdict(s) for s in statuses], args.output))
    elif args.output == "table":
        if statuses:
            sys.stdout.write(table(STATUS_COLUMNS, [status_row(s) for s in statuses], args.no_headers))
        else:
            print(f"no sync status in namespace {namespace} (has `helm-operator sync` run there?)",
                  file=sys.stderr)
    else:
        sys.stdout.write(format_text(statuses))
    return 0 if all(s.ok for s in statuses) else 1
