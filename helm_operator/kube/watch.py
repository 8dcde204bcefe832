"""List + watch one kind of object in a background thread and hand each
change to the event loop.

The kubernetes client's watch is a blocking generator, so it runs in its own
daemon thread; events reach the loop through `call_soon_threadsafe`. A watch
that ends (server timeout, dropped connection) is resumed from the last
resourceVersion; one that expired (410 Gone) is replaced by a fresh list,
which is delivered as SYNC events (plus DELETED for objects that vanished in
the gap), so no change is missed. This module does not decide what a change
means; the callback does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict[str, Any]], None]


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class ResourceWatcher:
    """Runs list+watch of `list_fn(*args)` until `stop()`.

    `list_fn` is a kubernetes client list function (for custom objects,
    `list_cluster_custom_object` / `list_namespaced_custom_object`); objects
    are delivered as plain dicts.
    """

    def __init__(self, name: str, list_fn: Callable[..., Any], args: tuple[Any, ...],
                 on_event: EventCallback, loop: asyncio.AbstractEventLoop,
                 sanitize: Callable[[Any], dict[str, Any]] | None = None,
                 timeout_seconds: int = 300, resource_version: str = "") -> None:
        self.name = name
        self._list_fn = list_fn
        self._args = args
        self._on_event = on_event
        self._loop = loop
        self._sanitize = sanitize or (lambda o: o)
        self._timeout = timeout_seconds
        self._start_rv = resource_version  # resume point; empty = list first
        self.relists = 0
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._known: set[str] = set()
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _deliver(self, event_type: str, obj: dict[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_event, event_type, obj)
        except RuntimeError:  # loop closed: we are shutting down
            self._stop.set()

    def _list(self) -> str:
        self.relists += 1
        result = self._list_fn(*self._args)
        if isinstance(result, dict):
            items, rv = result.get("items", []), result.get("metadata", {}).get("resourceVersion", "")
        else:
            items, rv = result.items, result.metadata.resource_version
        seen: set[str] = set()
        for item in items:
            obj = self._sanitize(item)
            seen.add(object_key(obj))
            self._deliver("SYNC", obj)
        for gone in self._known - seen:
            ns, _, name = gone.partition("/")
            self._deliver("DELETED", {"metadata": {"namespace": ns, "name": name}})
        self._known = seen
        self.synced.set()
        return str(rv)

    def _run(self) -> None:
        rv = self._start_rv
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                self._watch = watch.Watch()
                for event in self._watch.stream(self._list_fn, *self._args, resource_version=rv,
                                                timeout_seconds=self._timeout,
                                                allow_watch_bookmarks=True):
                    if self._stop.is_set():
                        break
                    kind = event["type"]
                    if kind == "ERROR":
                        raw = event.get("raw_object") or {}
                        if raw.get("code") == 410:
                            log.info("watch of %s expired (410 Gone); listing again", self.name)
                            rv = ""
                            break
                        raise ApiException(status=raw.get("code"), reason=raw.get("message"))
                    obj = self._sanitize(event["object"])
                    rv = obj.get("metadata", {}).get("resourceVersion", rv) or rv
                    if kind == "BOOKMARK":
                        continue
                    key = object_key(obj)
                    if kind == "DELETED":
                        self._known.discard(key)
                    else:
                        self._known.add(key)
                    self._deliver(kind, obj)
                backoff = 1.0
            except ApiException as e:
                if e.status == 410:
                    log.info("watch of %s expired (410 Gone); listing again", self.name)
                    rv = ""
                    continue
                log.warning("watch of %s failed (%s %s); retrying in %.0fs", self.name, e.status,
                            e.reason, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as e:  # noqa: BLE001 - a dropped connection must never end the watch
                if self._stop.is_set():
                    break
                log.warning("watch of %s dropped (%s); resuming in %.0fs", self.name, e, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)


def wait_synced(watchers: list[ResourceWatcher], timeout: float = 60.0) -> bool:
    """Block (in a thread) until every watcher delivered its first list."""
    deadline = time.monotonic() + timeout
    return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in watchers)
