"""List + watch one kind of object in a background thread and hand each
change to the event loop, as plain JSON dicts.

The request goes through `rest.RestClient.open`, the adapter's one request
function (the ApiClient's auth, TLS and proxy settings; failures are
`errors.KubeError`), and is read as raw JSON lines: no generated models, so
a BOOKMARK or an ERROR event is just another dict, and
`metadata_only` asks the API server for `PartialObjectMetadata`, so a watch
of Secrets or ConfigMaps never carries their data over the wire (helm's
release Secrets hold whole charts).

A watch that ends (server timeout, dropped connection) resumes from the last
resourceVersion, which BOOKMARK events keep fresh; one that expired (410
Gone) is replaced by a fresh, paginated list, delivered as SYNC events (plus
DELETED for objects that vanished in the gap), so no change is missed.
Failures back off (1 s doubling to 30 s); a stream that worked resets the
backoff. `last_contact` tells health checks when the API server last answered.

This module does not decide what a change means; the callback does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from urllib3.exceptions import MaxRetryError

from helm_operator.kube.errors import KubeError, from_status
from helm_operator.kube.rest import RestClient, api_path

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict[str, Any]], None]

_META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
_META_ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
LIST_PAGE = 500
MAX_BACKOFF = 30.0


class WatchExpired(Exception):
    """The resourceVersion to resume from is gone (410): list again."""


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop managedFields: large, and nothing here reads them."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return obj


class ResourceWatcher:
    """Runs list+watch of the collection at `path` until `stop()`.

    `path` is an API path such as `/api/v1/secrets` or
    `/apis/helm.fluxcd.io/v1/namespaces/ns/helmreleases`.
    """

    def __init__(self, name: str, api: client.ApiClient | RestClient, path: str,
                 on_event: EventCallback, loop: asyncio.AbstractEventLoop, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 metadata_only: bool = False,
                 timeout_seconds: int = 300, resource_version: str = "",
                 on_synced: Callable[[], None] | None = None) -> None:
        self.name = name
        self._rest = api if isinstance(api, RestClient) else RestClient(api)
        self._path = path
        self._on_event = on_event
        self._loop = loop
        self._selector = label_selector
        self._field_selector = field_selector
        self._metadata_only = metadata_only
        self._timeout = timeout_seconds
        self._start_rv = resource_version  # resume point; empty = list first
        self._on_synced = on_synced
        self._stop = threading.Event()
        self._response: Any = None
        self._known: set[str] = set()
        # Observable by health checks, metrics and tests.
        self.synced = threading.Event()
        self.relists = 0
        self.bookmarks = 0
        self.restarts = 0
        self.last_contact: float | None = None   # time.monotonic() of the last answer
        self.failing_since: float | None = None  # time.monotonic() of the first failure in a row
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown() if hasattr(response, "shutdown") else response.close()
            except Exception:  # noqa: BLE001 - closing a dead socket must not raise
                pass

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- requests --------------------------------------------------------
    def _get(self, verb: str, query: list[tuple[str, str]], accept: str, read_timeout: float) -> Any:
        if self._selector:
            query = [*query, ("labelSelector", self._selector)]
        if self._field_selector:
            query = [*query, ("fieldSelector", self._field_selector)]
        return self._rest.open(f"{verb} {self.name}", "GET", self._path, query=query, accept=accept,
                               timeout=(10.0, read_timeout))

    def _list(self) -> str:
        """List every object (in pages), deliver SYNC/DELETED; return the list's resourceVersion."""
        self.relists += 1
        seen: set[str] = set()
        token = ""
        accept = _META_LIST if self._metadata_only else "application/json"
        while True:
            query = [("limit", str(LIST_PAGE))] + ([("continue", token)] if token else [])
            response = self._get("list", query, accept, 60.0)
            try:
                doc = json.loads(response.data)
            finally:
                response.release_conn()
            self._touch()
            for item in doc.get("items") or ():
                obj = _slim(item)
                seen.add(object_key(obj))
                self._deliver("SYNC", obj)
            meta = doc.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                rv = str(meta.get("resourceVersion") or "")
                break
        for gone in self._known - seen:
            ns, _, name = gone.partition("/")
            self._deliver("DELETED", {"metadata": {"namespace": ns, "name": name}})
        self._known = seen
        if not self.synced.is_set():
            self.synced.set()
            if self._on_synced is not None:
                self._call_soon(self._on_synced)
        return rv

    def _stream(self, rv: str) -> Iterator[dict[str, Any]]:
        """The watch's events, one JSON line each, until the server ends the watch."""
        timeout = int(self._timeout * random.uniform(1.0, 1.2))  # spread reconnects
        query = [("watch", "true"), ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout))]
        response = self._get("watch", query, _META_ONE if self._metadata_only else "application/json",
                             timeout + 30.0)
        self._response = response
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            self._response = None
            response.release_conn()

    # ---- the loop ----------------------------------------------------------
    def _touch(self) -> None:
        if self.failing_since is not None:
            down = time.monotonic() - self.failing_since
            log.info("watch of %s reaches the API server again after %.0fs", self.name, down,
                     extra={"duration_ms": round(down * 1000)})
        self.last_contact = time.monotonic()
        self.failing_since = None
        self.last_error = ""

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: we are shutting down
            self._stop.set()

    def _deliver(self, event_type: str, obj: dict[str, Any]) -> None:
        self._call_soon(self._on_event, event_type, obj)

    def _watch_once(self, rv: str) -> str:
        """Follow one watch request from `rv`; return the resourceVersion to resume from."""
        for event in self._stream(rv):
            if self._stop.is_set():
                break
            self._touch()
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise WatchExpired()
                raise from_status(f"watch {self.name}", int(obj.get("code") or 0), None,
                                  str(obj.get("message") or "error event"))
            obj = _slim(obj)
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
            if kind == "BOOKMARK":
                self.bookmarks += 1
                continue
            key = object_key(obj)
            if kind == "DELETED":
                self._known.discard(key)
            else:
                self._known.add(key)
            self._deliver(str(kind), obj)
        self._touch()  # the server ended the watch normally
        return rv

    def _run(self) -> None:
        rv = self._start_rv
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                rv = self._watch_once(rv)
                self.restarts += 1
                backoff = 1.0  # a stream that worked resets the backoff
            except WatchExpired:
                log.info("watch of %s expired (410 Gone); listing again", self.name)
                rv = ""
            except KubeError as e:
                if e.status == 410:
                    log.info("watch of %s expired (410 Gone); listing again", self.name)
                    rv = ""
                    continue
                backoff = self._failed(str(e), backoff)
            except Exception as e:  # noqa: BLE001 - a dropped connection must never end the watch
                if self._stop.is_set():
                    break
                backoff = self._failed(_describe(e), backoff)

    def _failed(self, error: str, backoff: float) -> float:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        if error != self.last_error:
            log.warning("watch of %s failed; retrying in %.0fs", self.name, backoff, extra={"error": error})
        else:
            log.debug("watch of %s failed again; retrying in %.0fs", self.name, backoff, extra={"error": error})
        self.last_error = error
        self._stop.wait(backoff)
        return min(backoff * 2, MAX_BACKOFF)


def _describe(e: Exception) -> str:
    """A failed request in one line that stays the same while the failure does.

    urllib3's MaxRetryError names the whole URL (with this watch's random
    timeout) around the real cause; the cause alone is what to say, and
    saying the same text again is logged at DEBUG only.
    """
    if isinstance(e, MaxRetryError) and e.reason is not None:
        cause = e.reason
        text = str(cause)
        if "): " in text and text.startswith(("HTTPConnection(", "HTTPSConnection(")):
            text = text.split("): ", 1)[1]  # drop the connection's repr
        return f"cannot reach the API server: {type(cause).__name__}: {text}"
    return f"{type(e).__name__}: {e}"


def collection_path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    """The API path of a collection: core (`group=""`) or a named group, optionally one namespace."""
    return api_path(group, version, plural, namespace)


def shard_label_keys(selector: str | None) -> tuple[str, ...]:
    """The label keys a sharding selector tests (`sharding.fluxcd.io/key=shard1`,
    `!sharding.fluxcd.io/key`, `k in (a,b)`): the labels each release revision
    carries, so a shard can select its releases' storage the same way."""
    if not selector:
        return ()
    keys = []
    for term in _split_selector(selector):
        term = term.strip().lstrip("!").strip()
        for sep in ("!=", "==", "=", " notin ", " in "):
            if sep in term:
                term = term.split(sep, 1)[0]
                break
        if term and term not in keys:
            keys.append(term.strip())
    return tuple(keys)


def _split_selector(selector: str) -> list[str]:
    """Split at commas outside parentheses (`k in (a,b),x=y`)."""
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t for t in terms if t.strip()]


def wait_synced(watchers: list[ResourceWatcher], timeout: float = 60.0) -> bool:
    """Block (in a thread) until every watcher delivered its first list."""
    deadline = time.monotonic() + timeout
    return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in watchers)
