"""`helm-operator reconcile|suspend|resume|get|history hr ...`: the release
controls of a HelmRelease in the cluster, in the style of `flux`.

Place in the flow: a person's (or a pipeline's) hand on the cluster object.
`reconcile` writes the `reconcile.fluxcd.io/requestedAt` annotation (with
`--force` also `forceAt`, with `--reset` also `resetAt`), the token Flux v2's
CLI writes; `suspend`/`resume` set `spec.suspend`; the operator does the rest
and answers in the status, which `--wait` watches (one watch request on the
one object) until the answer is there. `get` and `history` read the status.
Each changing command prints one line and exits 1 on failure or timeout.

What this module does NOT do: it changes the cluster object, never Git (a
value set in Git wins at the next sync), and runs no helm.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from helm_operator.api.constants import GROUP, PLURAL, VERSION
from helm_operator.cli import hrview
from helm_operator.cli.clusterargs import (
    FIELD_MANAGER, Cluster, add_cluster_flags, add_output_flag, connect, dump, one_line_errors, table,
)
from helm_operator.cli.errors import CommandError
from helm_operator.kube import NotFound
from helm_operator.cli.parsing import duration

KIND = "helmrelease"
KIND_ALIASES = ["hr", "helmreleases", "hrs"]


def _kind_parser(subparsers: argparse._SubParsersAction, verb: str, help_text: str,  # type: ignore[type-arg]
                 description: str) -> argparse.ArgumentParser:
    parent = subparsers.add_parser(verb, help=help_text, description=description)
    kinds = parent.add_subparsers(dest="kind", metavar="KIND", required=True,
                                  title="kinds", description="hr (helmrelease) is the only kind")
    return kinds.add_parser(KIND, aliases=KIND_ALIASES, help=help_text, description=description)  # type: ignore[no-any-return]


def _add_wait_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--wait", action="store_true", help=f"wait until {what}; exit 1 when it failed")
    p.add_argument("--timeout", type=duration, default=duration("5m"), metavar="DURATION",
                   help="how long --wait waits, e.g. 90s or 5m (default 5m); exit 1 when it runs out")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _kind_parser(subparsers, "reconcile", "ask the operator to reconcile a HelmRelease now",
                     "Write reconcile.fluxcd.io/requestedAt on the HelmRelease (as `flux reconcile` does); "
                     "the operator reconciles it at once, past any retry backoff, and echoes the token in "
                     "status.lastHandledReconcileAt. Exit code 0 when requested (with --wait: when the answer "
                     "is Ready); 1 when the answer is a failure, --wait timed out, or the HelmRelease cannot be "
                     "read or changed (one line on stderr says why).")
    p.add_argument("name", help="name of the HelmRelease")
    p.add_argument("--force", action="store_true",
                   help="also write reconcile.fluxcd.io/forceAt: one upgrade even when nothing changed, "
                        "past a rolled-back or exhausted state")
    p.add_argument("--reset", action="store_true",
                   help="also write reconcile.fluxcd.io/resetAt: clear the failure and rollback counters first")
    _add_wait_flags(p, "the operator answered the request with Ready (exit 0) or a failure")
    add_cluster_flags(p)
    add_output_flag(p, ("text", "json", "yaml"), "text")
    p.set_defaults(handler=run_reconcile)

    p = _kind_parser(subparsers, "suspend", "stop every action of the operator on a HelmRelease",
                     "Set spec.suspend: true: no install, upgrade, rollback, drift repair or image "
                     "automation until it is resumed. If Git sets spec.suspend, the next sync puts Git's "
                     "value back: suspend in Git to make it last. Exit code 0 when suspended; "
                     "1 when it cannot be read or changed (one line on stderr says why).")
    p.add_argument("name", help="name of the HelmRelease")
    add_cluster_flags(p)
    add_output_flag(p, ("text", "json", "yaml"), "text")
    p.set_defaults(handler=run_suspend)

    p = _kind_parser(subparsers, "resume", "let the operator act on a suspended HelmRelease again",
                     "Set spec.suspend: false; the operator reconciles the HelmRelease at once. Exit code 0 "
                     "when resumed (with --wait: when Ready); 1 when it failed, --wait timed out, or it cannot "
                     "be read or changed (one line on stderr says why).")
    p.add_argument("name", help="name of the HelmRelease")
    _add_wait_flags(p, "the resumed HelmRelease is Ready (exit 0) or failed")
    add_cluster_flags(p)
    add_output_flag(p, ("text", "json", "yaml"), "text")
    p.set_defaults(handler=run_resume)

    p = _kind_parser(subparsers, "get", "show HelmReleases: ready, phase, revision, suspended, failures",
                     "One line per HelmRelease from its status (no helm, one API request). Exit code 0, also "
                     "when there are none; 1 when the named one does not exist or the cluster cannot be read "
                     "(one line on stderr says why).")
    p.add_argument("name", nargs="?", default=None, help="name of one HelmRelease (default: all in the namespace)")
    add_cluster_flags(p, all_namespaces=True)
    add_output_flag(p, ("table", "json", "yaml"), "table", tables=True)
    p.set_defaults(handler=run_get)

    p = _kind_parser(subparsers, "history", "show the revisions the operator made for a HelmRelease",
                     "status.history, newest first: revision, action, helm status, chart, tests, "
                     "configuration digest, time (no helm, one API request). Exit code 0, also when there is "
                     "no history yet; 1 when the HelmRelease does not exist or the cluster cannot be read "
                     "(one line on stderr says why).")
    p.add_argument("name", help="name of the HelmRelease")
    add_cluster_flags(p)
    add_output_flag(p, ("table", "json", "yaml"), "table", tables=True)
    p.set_defaults(handler=run_history)


# ---- reading and writing the one object ------------------------------------------------

async def _get(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = await cluster.kube.get_helmrelease(cluster.namespace, name)
    if obj is None:
        raise CommandError(f"HelmRelease {cluster.namespace}/{name} not found; check the name and namespace "
                           f"(helm-operator get hr -n {cluster.namespace})")
    return obj


async def _patch(cluster: Cluster, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    try:
        return await cluster.kube.patch_helmrelease(cluster.namespace, name, patch, FIELD_MANAGER)
    except NotFound:
        raise CommandError(f"HelmRelease {cluster.namespace}/{name} not found; check the name and namespace "
                           f"(helm-operator get hr -n {cluster.namespace})") from None


async def _wait_for(cluster: Cluster, obj: dict[str, Any], answer: Callable[[dict[str, Any]], hrview.Verdict | None],
                    timeout: float, what: str) -> hrview.Verdict:
    """Watch the one object from `obj`'s resourceVersion until `answer` gives a verdict."""
    from helm_operator.kube.watch import ResourceWatcher, collection_path

    found = answer(obj)
    if found is not None:
        return found
    meta = obj.get("metadata") or {}
    loop = asyncio.get_running_loop()
    verdict: asyncio.Future[hrview.Verdict] = loop.create_future()
    latest = [obj]

    def on_event(event_type: str, event_obj: dict[str, Any]) -> None:
        if verdict.done():
            return
        if event_type == "DELETED":
            verdict.set_exception(CommandError(f"HelmRelease {hrview.key(obj)} was deleted while waiting for {what}"))
            return
        latest[0] = event_obj
        result = answer(event_obj)
        if result is not None:
            verdict.set_result(result)

    watcher = ResourceWatcher(
        f"helmrelease {hrview.key(obj)}", cluster.kube.api_client,
        collection_path(GROUP, VERSION, PLURAL, cluster.namespace), on_event, loop,
        field_selector=f"metadata.name={meta.get('name', '')}", resource_version=str(meta.get("resourceVersion", "")),
        timeout_seconds=max(1, min(300, int(timeout) + 1)))
    watcher.start()
    deadline = loop.time() + timeout
    try:
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(verdict), min(1.0, max(0.0, deadline - loop.time())))
            except TimeoutError:
                if watcher.last_error.startswith(("401", "403")):  # retrying will not help: say so now
                    raise CommandError(f"cannot watch HelmRelease {hrview.key(obj)} ({watcher.last_error}); "
                                       "--wait needs watch on helmreleases (docs/release-controls.md)") from None
                if loop.time() >= deadline:
                    raise
    except TimeoutError:
        last = hrview.summary(latest[0])
        where = f"{last['ready']}, {last['reason']}: {last['message']}" if last["reason"] else last["message"]
        raise CommandError(f"timed out after {timeout:g}s waiting for {what} (Ready {where}); is the operator "
                           f"running? kubectl describe hr -n {cluster.namespace} {meta.get('name')}") from None
    finally:
        watcher.stop()


def _print_result(args: argparse.Namespace, doc: dict[str, Any], line: str, ok: bool) -> int:
    if args.output == "text":
        print(line, file=sys.stdout if ok else sys.stderr)
    else:
        sys.stdout.write(dump(doc, args.output))
    return 0 if ok else 1


def _verdict_doc(v: hrview.Verdict) -> dict[str, Any]:
    return {"ok": v.ok, "ready": v.ready, "reason": v.reason, "message": v.message, "revision": v.revision}


# ---- the commands ---------------------------------------------------------------------

@one_line_errors("reconcile")
def run_reconcile(args: argparse.Namespace) -> int:
    return asyncio.run(_reconcile(args))


async def _reconcile(args: argparse.Namespace) -> int:
    cluster = connect(args)
    obj = await _get(cluster, args.name)
    key = hrview.key(obj)
    if (obj.get("spec") or {}).get("suspend"):
        raise CommandError(f"HelmRelease {key} is suspended, so it would not reconcile; resume it first: "
                           f"helm-operator resume hr {args.name} -n {cluster.namespace}")
    token = hrview.request_token()
    patched = await _patch(cluster, args.name, {"metadata": {"annotations": hrview.request_annotations(
        token, args.force, args.reset)}})
    what = " and ".join(w for w, on in (("a reset", args.reset), ("a forced upgrade", args.force)) if on) \
        or "a reconcile"
    doc: dict[str, Any] = {"namespace": cluster.namespace, "name": args.name, "requestedAt": token,
                           "force": args.force, "reset": args.reset}
    if not args.wait:
        return _print_result(args, {**doc, "ok": True}, f"HelmRelease {key}: {what} requested ({token})", True)
    verdict = await _wait_for(cluster, patched, lambda o: hrview.reconcile_answer(o, token, args.reset),
                              args.timeout, f"HelmRelease {key} to answer the request {token}")
    doc.update(_verdict_doc(verdict), forced=verdict.forced)
    if verdict.ok:
        line = f"HelmRelease {key} reconciled: {verdict.message}"
    else:
        line = f"HelmRelease {key} reconcile failed: {verdict.reason}: {verdict.message}"
    if args.force and not verdict.forced:
        line += " (the forced upgrade did not run: the release failed before helm)"
    return _print_result(args, doc, line, verdict.ok)


@one_line_errors("suspend")
def run_suspend(args: argparse.Namespace) -> int:
    async def go() -> int:
        cluster = connect(args)
        obj = await _patch(cluster, args.name, {"spec": {"suspend": True}})
        key = hrview.key(obj)
        return _print_result(args, {"namespace": cluster.namespace, "name": args.name, "suspended": True, "ok": True},
                             f"HelmRelease {key} suspended", True)
    return asyncio.run(go())


@one_line_errors("resume")
def run_resume(args: argparse.Namespace) -> int:
    async def go() -> int:
        cluster = connect(args)
        obj = await _patch(cluster, args.name, {"spec": {"suspend": False}})
        key = hrview.key(obj)
        doc: dict[str, Any] = {"namespace": cluster.namespace, "name": args.name, "suspended": False}
        if not args.wait:
            return _print_result(args, {**doc, "ok": True}, f"HelmRelease {key} resumed", True)
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        verdict = await _wait_for(cluster, obj, lambda o: hrview.resume_answer(o, generation), args.timeout,
                                  f"HelmRelease {key} to reconcile generation {generation}")
        doc.update(_verdict_doc(verdict))
        line = (f"HelmRelease {key} resumed and Ready: {verdict.message}" if verdict.ok
                else f"HelmRelease {key} resumed but not Ready: {verdict.reason}: {verdict.message}")
        return _print_result(args, doc, line, verdict.ok)
    return asyncio.run(go())


@one_line_errors("get")
def run_get(args: argparse.Namespace) -> int:
    async def go() -> int:
        cluster = connect(args)
        if args.name:
            objs = [await _get(cluster, args.name)]
        else:
            objs = await cluster.kube.list_helmreleases(None if args.all_namespaces else cluster.namespace)
        summaries = sorted((hrview.summary(o) for o in objs), key=lambda s: (s["namespace"], s["name"]))
        if args.output != "table":
            sys.stdout.write(dump(summaries[0] if args.name else summaries, args.output))
            return 0
        if not summaries:
            where = "any namespace" if args.all_namespaces else f"namespace {cluster.namespace}"
            print(f"no HelmReleases in {where}", file=sys.stderr)
            return 0
        wide = bool(args.all_namespaces) and not args.name
        headers = ("NAMESPACE", *hrview.GET_COLUMNS) if wide else hrview.GET_COLUMNS
        sys.stdout.write(table(headers, [hrview.get_row(s, wide) for s in summaries], args.no_headers))
        return 0
    return asyncio.run(go())


@one_line_errors("history")
def run_history(args: argparse.Namespace) -> int:
    async def go() -> int:
        cluster = connect(args)
        obj = await _get(cluster, args.name)
        status = obj.get("status") or {}
        if args.output != "table":
            doc = {"namespace": cluster.namespace, "name": args.name, "releaseName": status.get("releaseName", ""),
                   "history": list(status.get("history") or [])}
            sys.stdout.write(dump(doc, args.output))
            return 0
        rows = hrview.history_rows(obj)
        if not rows:
            print(f"HelmRelease {hrview.key(obj)} has no history yet: the operator made no revision for it",
                  file=sys.stderr)
            return 0
        sys.stdout.write(table(hrview.HISTORY_COLUMNS, rows, args.no_headers))
        return 0
    return asyncio.run(go())
