"""`helm-operator run`: flags -> OperatorSettings -> Operator.run().

A setting it cannot use (no kubeconfig, a bad tenancy flag, an unreadable
token file) stops it before it starts, with one line on stderr and exit
code 1 (`clusterargs.startup_errors`); once running, the process reports
through its logs, events, statuses and /healthz.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path

from helm_operator.automation.gitwrite import GitTarget
from helm_operator.operator.process import AutomationSettings, Operator, OperatorSettings
from helm_operator.release.hostpolicy import HostPolicy
from helm_operator.release.tenancy import TenancyPolicy
from helm_operator.runtime.http import parse_listen, read_token_file
from helm_operator.cli.clusterargs import startup_errors
from helm_operator.cli.errors import CommandError
from helm_operator.cli.parsing import address, count, duration, positive, rate
from helm_operator.cli.settings import add_process_flags, setup_logging
from helm_operator.cli.settings import add_yaml_limit_flags, allow_api_json_depth, yaml_limits_from_args


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "run", help="run the release operator (watch HelmReleases, drive helm)",
        description="Watch HelmReleases and make each one true with helm; with --git-url also automate "
                    "image tags in Git. Runs until SIGTERM. Exit code 0 after a clean stop, 1 when it "
                    "cannot start (e.g. no usable kubeconfig: one line on stderr says what to do), 2 for "
                    "a flag it cannot use.")
    c = p.add_argument_group("cluster")
    c.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH",
                   help="kubeconfig file (default: $KUBECONFIG, else the in-cluster config, else ~/.kube/config)")
    c.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context to use (default: the current context)")
    p.add_argument("--allow-namespace", default=None, metavar="NAMESPACE",
                   help="only watch HelmReleases in this namespace (default: every namespace)")
    p.add_argument("--watch-label-selector", default=None, metavar="SELECTOR",
                   help="sharding: only HelmReleases whose labels match this Kubernetes label selector, e.g. "
                        "sharding.fluxcd.io/key=shard1, or !sharding.fluxcd.io/key for the unsharded rest")
    p.add_argument("--workers", type=positive, default=4, metavar="N",
                   help="releases reconciled in parallel (default 4)")
    p.add_argument("--max-parallel-installs", type=count, default=0, metavar="N",
                   help="first installs run at once, at most (0 = --workers); set it below --workers when "
                        "installs are slow (hooks, --wait) so upgrades never wait for a worker (default 0)")
    p.add_argument("--progress-status-delay", type=duration, default=duration("1s"), metavar="DURATION",
                   help="how long an install or upgrade runs before the HelmRelease's status says so (phase "
                        "Installing/Upgrading, Reconciling=True); quicker ones only record their result, which "
                        "spares the API server a status write (0 = at the start of every attempt; default 1s)")
    p.add_argument("--charts-sync-interval", type=duration, default=duration("3m"), metavar="DURATION",
                   help="periodic resync of every HelmRelease (default 3m)")
    p.add_argument("--git-poll-interval", type=duration, default=duration("5m"), metavar="DURATION",
                   help="how often Git chart sources are fetched (default 5m)")
    p.add_argument("--git-default-ref", default="master", metavar="REF",
                   help="chart ref when a Git chart names none (default master)")
    p.add_argument("--drift-detection-interval", type=duration, default=duration("10m"), metavar="DURATION",
                   help="how often a release in sync is compared with its live objects (a server-side "
                        "dry run per object, no helm call; 0 = never, default 10m)")
    p.add_argument("--default-drift-mode", choices=["disabled", "warn", "enabled"], default="warn",
                   help="what to do about objects changed by hand when a HelmRelease sets no "
                        "spec.driftDetection.mode: warn (event and Drifted condition), enabled (also put "
                        "them back), disabled (do not compare); default warn")
    p.add_argument("--git-ssh-command", default=os.environ.get("GIT_SSH_COMMAND"), metavar="COMMAND",
                   help="ssh command for ssh Git chart sources, e.g. with -i KEY and known_hosts "
                        "(default: $GIT_SSH_COMMAND)")
    p.add_argument("--webhook-listen", default=None, type=address, metavar="HOST:PORT",
                   help="serve POST /api/v1/sync-git on this address instead of --listen")
    p.add_argument("--webhook-token-file", type=Path, default=None, metavar="PATH",
                   help="file holding a token that POST /api/v1/sync-git requires as "
                        "'Authorization: Bearer <token>' (read at start; /metrics and /healthz stay open)")
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("HELM_OPERATOR_CHART_CACHE",
                                                                         "/tmp/helm-operator-cache")),
                   metavar="DIR", help="where fetched charts and Git chart mirrors are kept "
                                       "(default: $HELM_OPERATOR_CHART_CACHE, else /tmp/helm-operator-cache)")
    p.add_argument("--helm-binary", default=os.environ.get("HELM_BINARY", "helm"), metavar="PATH",
                   help="the helm v4 executable (default: $HELM_BINARY, else helm on $PATH)")
    p.add_argument("--oci-plain-http", action="store_true", help="talk plain HTTP to OCI registries (tests)")
    p.add_argument("--leader-elect", action="store_true",
                   help="with several replicas, act only while holding a coordination.k8s.io Lease")
    p.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                   metavar="NAMESPACE", help="namespace of the Lease (default: $POD_NAMESPACE, else default)")
    p.add_argument("--leader-election-name", default="helm-operator", metavar="NAME",
                   help="name of the Lease (default helm-operator)")
    p.add_argument("--lease-duration", type=duration, default=duration("15s"), metavar="DURATION",
                   help="how long a dead leader keeps the Lease before another replica takes over (default 15s)")
    g = p.add_argument_group("image automation (on when --git-url is set)")
    g.add_argument("--git-url", metavar="URL", help="repository holding the HelmRelease files automation edits")
    g.add_argument("--git-branch", default="master", metavar="BRANCH",
                   help="branch automation commits to (default master)")
    g.add_argument("--git-path", action="append", default=[], metavar="PATH",
                   help="paths with HelmReleases (repeatable; default: the whole repository)")
    g.add_argument("--git-user", default="helm-operator", metavar="NAME",
                   help="commit author name (default helm-operator)")
    g.add_argument("--git-email", default="helm-operator@users.noreply.local", metavar="EMAIL",
                   help="commit author email (default helm-operator@users.noreply.local)")
    g.add_argument("--git-ci-skip", action="store_true", help="append --git-ci-skip-message to commit messages")
    g.add_argument("--git-ci-skip-message", default="[ci skip]", metavar="TEXT",
                   help="what --git-ci-skip appends (default [ci skip])")
    g.add_argument("--automation-interval", type=duration, default=duration("5m"), metavar="DURATION",
                   help="how often automated HelmReleases are moved to the newest allowed tags (default 5m; "
                        "also at once when a scan finds a new tag)")
    g.add_argument("--registry-poll-interval", type=duration, default=duration("5m"), metavar="DURATION",
                   help="how often the tags of each automated image are listed (default 5m)")
    g.add_argument("--registry-rate-limit", type=rate, default=10.0, metavar="N",
                   help="requests per second per registry (default 10)")
    g.add_argument("--registry-insecure-host", action="append", default=[], metavar="HOST:PORT",
                   help="registry host:port spoken to over plain HTTP (repeatable)")
    g.add_argument("--docker-config", type=Path, default=None, metavar="PATH",
                   help="docker config.json with registry auths")
    g.add_argument("--registry-secret", action="append", default=[], metavar="NAMESPACE/NAME",
                   help="namespace/name of a kubernetes.io/dockerconfigjson Secret (repeatable)")
    g.add_argument("--k8s-default-namespace", default="default", metavar="NAMESPACE",
                   help="namespace of HelmRelease documents in Git that name none (default: default)")
    p.add_argument("--shutdown-grace-period", type=duration, default=duration("25s"), metavar="DURATION",
                   help="after SIGTERM, how long helm calls in flight may run to completion before they are "
                        "stopped (a second SIGTERM stops them at once); keep it below the pod's "
                        "terminationGracePeriodSeconds (default 25s)")
    p.add_argument("--watch-timeout", type=duration, default=duration("5m"), metavar="DURATION",
                   help="how long one watch request lasts before it is renewed (default 5m)")
    t = p.add_argument_group("tenant lockdown (all off by default)")
    t.add_argument("--default-service-account", default=None, metavar="NAME",
                   help="helm acts as this ServiceAccount of each HelmRelease's namespace when the "
                        "HelmRelease names none in spec.serviceAccountName (default: act as the operator)")
    t.add_argument("--no-cross-namespace-refs", action="store_true",
                   help="refuse HelmReleases whose targetNamespace, valuesFrom ConfigMap/Secret or "
                        "chart.secretRef is in another namespace")
    t.add_argument("--external-source-allow", action="append", default=[], metavar="HOST",
                   help="allow externalSourceRef URLs to reach this IP, CIDR, host name, *.domain or * "
                        "(repeatable); an allowed address wins over any deny")
    t.add_argument("--external-source-deny", action="append", default=[], metavar="HOST",
                   help="deny this IP, CIDR, host name, *.domain or * to externalSourceRef URLs (repeatable), "
                        "beside the default: loopback, link-local and cloud metadata addresses")
    add_yaml_limit_flags(p, charts=True)
    add_process_flags(p, port=3030, serves="/metrics, /healthz, /readyz and POST /api/v1/sync-git")
    p.set_defaults(handler=_run)


def _lockdown(args: argparse.Namespace) -> TenancyPolicy:
    """The tenancy flags as a policy; a bad value stops the program with its flag named."""
    if args.default_service_account is not None and not _DNS_SUBDOMAIN.match(args.default_service_account):
        raise CommandError(f"--default-service-account {args.default_service_account!r} "
                           "is not a ServiceAccount name (lower-case letters, digits, '-' and '.')")
    try:
        hosts = HostPolicy.from_flags(args.external_source_allow, args.external_source_deny)
    except ValueError as e:
        raise CommandError(f"--external-source-allow/--external-source-deny: {e}") from None
    return TenancyPolicy(default_service_account=args.default_service_account,
                         no_cross_namespace_refs=args.no_cross_namespace_refs, external_hosts=hosts)


@startup_errors("run")
def _run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    lockdown = _lockdown(args)
    try:
        token = read_token_file(args.webhook_token_file) if args.webhook_token_file else None
        webhook_listen = parse_listen(args.webhook_listen, "--webhook-listen") if args.webhook_listen else None
    except ValueError as e:
        raise CommandError(str(e)) from None
    allow_api_json_depth()
    automation = None
    if args.git_url:
        automation = AutomationSettings(
            git=GitTarget(url=args.git_url, branch=args.git_branch, paths=tuple(args.git_path),
                          author_name=args.git_user, author_email=args.git_email,
                          ssh_command=args.git_ssh_command, ci_skip=args.git_ci_skip,
                          ci_skip_message=args.git_ci_skip_message),
            interval=args.automation_interval, registry_poll_interval=args.registry_poll_interval,
            registry_rate_limit=args.registry_rate_limit,
            registry_plain_http_hosts=tuple(args.registry_insecure_host),
            docker_config=args.docker_config, registry_secrets=tuple(args.registry_secret),
            default_namespace=args.k8s_default_namespace)
    settings = OperatorSettings(
        kubeconfig=args.kubeconfig, kube_context=args.context, allow_namespace=args.allow_namespace,
        workers=args.workers,
        charts_sync_interval=args.charts_sync_interval, git_poll_interval=args.git_poll_interval,
        git_default_ref=args.git_default_ref, git_ssh_command=args.git_ssh_command,
        listen_host=args.listen_host, listen_port=args.listen_port, cache_dir=args.cache_dir,
        helm_binary=args.helm_binary, oci_plain_http=args.oci_plain_http,
        leader_elect=args.leader_elect, leader_election_namespace=args.leader_election_namespace,
        leader_election_name=args.leader_election_name, lease_duration=args.lease_duration,
        automation=automation, drift_interval=args.drift_detection_interval, lockdown=lockdown,
        webhook_token=token, webhook_listen=webhook_listen,
        watch_timeout=int(args.watch_timeout), default_drift_mode=args.default_drift_mode,
        shutdown_grace_period=args.shutdown_grace_period, watch_label_selector=args.watch_label_selector,
        max_parallel_installs=args.max_parallel_installs, progress_status_delay=args.progress_status_delay,
        yaml_limits=yaml_limits_from_args(args),
        api_unreachable_threshold=args.api_unreachable_threshold, loop_stall_threshold=args.loop_stall_threshold,
    )
    asyncio.run(Operator(settings).run())
    return 0
