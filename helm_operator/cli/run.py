"""`helm-operator run`: flags -> OperatorSettings -> Operator.run()."""

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
from helm_operator.cli.settings import add_health_flags, add_logging_flags, parse_duration, setup_logging
from helm_operator.cli.settings import add_yaml_limit_flags, allow_api_json_depth, yaml_limits_from_args


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("run", help="run the release operator (watch HelmReleases, drive helm)")
    p.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default: $KUBECONFIG, else in-cluster)")
    p.add_argument("--allow-namespace", default=None, help="only watch HelmReleases in this namespace")
    p.add_argument("--watch-label-selector", default=None, metavar="SELECTOR",
                   help="sharding: only HelmReleases whose labels match this Kubernetes label selector, e.g. "
                        "sharding.fluxcd.io/key=shard1, or !sharding.fluxcd.io/key for the unsharded rest")
    p.add_argument("--workers", type=int, default=4, help="releases reconciled in parallel (default 4)")
    p.add_argument("--max-parallel-installs", type=int, default=0, metavar="N",
                   help="first installs run at once, at most (0 = --workers); set it below --workers when "
                        "installs are slow (hooks, --wait) so upgrades never wait for a worker (default 0)")
    p.add_argument("--charts-sync-interval", type=parse_duration, default=parse_duration("3m"),
                   help="periodic resync of every HelmRelease (default 3m)")
    p.add_argument("--git-poll-interval", type=parse_duration, default=parse_duration("5m"),
                   help="how often Git chart sources are fetched (default 5m)")
    p.add_argument("--git-default-ref", default="master", help="chart ref when a Git chart names none")
    p.add_argument("--drift-detection-interval", type=parse_duration, default=parse_duration("10m"),
                   help="how often a release in sync is compared with its live objects (a server-side "
                        "dry run per object, no helm call; 0 = never, default 10m)")
    p.add_argument("--default-drift-mode", choices=["disabled", "warn", "enabled"], default="warn",
                   help="what to do about objects changed by hand when a HelmRelease sets no "
                        "spec.driftDetection.mode: warn (event and Drifted condition), enabled (also put "
                        "them back), disabled (do not compare); default warn")
    p.add_argument("--git-ssh-command", default=os.environ.get("GIT_SSH_COMMAND"),
                   help="ssh command for ssh Git chart sources (e.g. with -i KEY and known_hosts)")
    p.add_argument("--listen", default="0.0.0.0:3030", help="address of /metrics, /healthz, /api/v1/sync-git")
    p.add_argument("--webhook-listen", default=None, metavar="HOST:PORT",
                   help="serve POST /api/v1/sync-git on this address instead of --listen")
    p.add_argument("--webhook-token-file", type=Path, default=None, metavar="PATH",
                   help="file holding a token that POST /api/v1/sync-git requires as "
                        "'Authorization: Bearer <token>' (read at start; /metrics and /healthz stay open)")
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("HELM_OPERATOR_CHART_CACHE",
                                                                         "/tmp/helm-operator-cache")))
    p.add_argument("--helm-binary", default=os.environ.get("HELM_BINARY", "helm"))
    p.add_argument("--oci-plain-http", action="store_true", help="talk plain HTTP to OCI registries (tests)")
    p.add_argument("--leader-elect", action="store_true",
                   help="with several replicas, act only while holding a coordination.k8s.io Lease")
    p.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                   help="namespace of the Lease (default: $POD_NAMESPACE, else default)")
    p.add_argument("--leader-election-name", default="helm-operator", help="name of the Lease")
    p.add_argument("--lease-duration", type=parse_duration, default=parse_duration("15s"),
                   help="how long a dead leader keeps the Lease before another replica takes over")
    g = p.add_argument_group("image automation (on when --git-url is set)")
    g.add_argument("--git-url", help="repository holding the HelmRelease files automation edits")
    g.add_argument("--git-branch", default="master")
    g.add_argument("--git-path", action="append", default=[], help="paths with HelmReleases (repeatable)")
    g.add_argument("--git-user", default="helm-operator", help="commit author name")
    g.add_argument("--git-email", default="helm-operator@users.noreply.local", help="commit author email")
    g.add_argument("--git-ci-skip", action="store_true", help="append [ci skip] to commit messages")
    g.add_argument("--git-ci-skip-message", default="[ci skip]")
    g.add_argument("--automation-interval", type=parse_duration, default=parse_duration("5m"))
    g.add_argument("--registry-poll-interval", type=parse_duration, default=parse_duration("5m"))
    g.add_argument("--registry-rate-limit", type=float, default=10.0, help="requests per second per registry")
    g.add_argument("--registry-insecure-host", action="append", default=[],
                   help="registry host:port spoken to over plain HTTP (repeatable)")
    g.add_argument("--docker-config", type=Path, default=None, help="docker config.json with registry auths")
    g.add_argument("--registry-secret", action="append", default=[],
                   help="namespace/name of a kubernetes.io/dockerconfigjson Secret (repeatable)")
    g.add_argument("--k8s-default-namespace", default="default",
                   help="namespace of HelmRelease documents in Git that name none")
    p.add_argument("--shutdown-grace-period", type=parse_duration, default=parse_duration("25s"),
                   help="after SIGTERM, how long helm calls in flight may run to completion before they are "
                        "stopped (a second SIGTERM stops them at once); keep it below the pod's "
                        "terminationGracePeriodSeconds (default 25s)")
    p.add_argument("--watch-timeout", type=parse_duration, default=parse_duration("5m"),
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
    add_logging_flags(p)
    add_health_flags(p)
    p.set_defaults(handler=_run)


def _lockdown(args: argparse.Namespace) -> TenancyPolicy:
    """The tenancy flags as a policy; a bad value stops the program with its flag named."""
    if args.default_service_account is not None and not _DNS_SUBDOMAIN.match(args.default_service_account):
        raise SystemExit(f"helm-operator run: --default-service-account {args.default_service_account!r} "
                         "is not a ServiceAccount name (lower-case letters, digits, '-' and '.')")
    try:
        hosts = HostPolicy.from_flags(args.external_source_allow, args.external_source_deny)
    except ValueError as e:
        raise SystemExit(f"helm-operator run: --external-source-allow/--external-source-deny: {e}") from None
    return TenancyPolicy(default_service_account=args.default_service_account,
                         no_cross_namespace_refs=args.no_cross_namespace_refs, external_hosts=hosts)


def _run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    lockdown = _lockdown(args)
    try:
        token = read_token_file(args.webhook_token_file) if args.webhook_token_file else None
        webhook_listen = parse_listen(args.webhook_listen, "--webhook-listen") if args.webhook_listen else None
    except ValueError as e:
        raise SystemExit(f"helm-operator run: {e}") from None
    allow_api_json_depth()
    host, _, port = args.listen.rpartition(":")
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
        kubeconfig=args.kubeconfig, allow_namespace=args.allow_namespace, workers=args.workers,
        charts_sync_interval=args.charts_sync_interval, git_poll_interval=args.git_poll_interval,
        git_default_ref=args.git_default_ref, git_ssh_command=args.git_ssh_command,
        listen_host=host or "0.0.0.0", listen_port=int(port), cache_dir=args.cache_dir,
        helm_binary=args.helm_binary, oci_plain_http=args.oci_plain_http,
        leader_elect=args.leader_elect, leader_election_namespace=args.leader_election_namespace,
        leader_election_name=args.leader_election_name, lease_duration=args.lease_duration,
        automation=automation, drift_interval=args.drift_detection_interval, lockdown=lockdown,
        webhook_token=token, webhook_listen=webhook_listen,
        watch_timeout=int(args.watch_timeout), default_drift_mode=args.default_drift_mode,
        shutdown_grace_period=args.shutdown_grace_period, watch_label_selector=args.watch_label_selector,
        max_parallel_installs=args.max_parallel_installs,
        yaml_limits=yaml_limits_from_args(args),
        api_unreachable_threshold=args.api_unreachable_threshold, loop_stall_threshold=args.loop_stall_threshold,
    )
    asyncio.run(Operator(settings).run())
    return 0
