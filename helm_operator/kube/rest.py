"""The one way a request reaches the Kubernetes API server.

Place in the flow: the bottom of the adapter. `client.Kube` (HelmReleases,
values sources, events), `apply.ClusterApi` (objects of any kind),
`discovery.DiscoveryCache`, `lease.LeaseStore` and `watch.ResourceWatcher`
all send their requests through `RestClient.open`: the `kubernetes`
ApiClient builds the URL and the credentials (kubeconfig or in-cluster
token, TLS, proxy) and its REST layer sends it; bodies and answers stay
plain JSON. The generated models are never used: they cost CPU and memory on
every object (helm's release Secrets hold whole charts) and knew nothing we
need. Every failure becomes one class of `errors.KubeError` here.

Blocking calls: `open` and `call` block; `request` runs `call` in a thread,
so the event loop never waits on the network.

What this module does NOT do: know any kind, path or verb beyond HTTP; the
modules above it do.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

from kubernetes import client, config

from helm_operator.kube.errors import Invalid, KubeConfigError, from_exception, from_status

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# connect, read (seconds). The API server itself ends a request after 60 s
# (its --request-timeout); watches pass their own, longer read timeout.
REQUEST_TIMEOUT = (10.0, 60.0)
# kube-apiserver's default --max-request-bytes. A larger body is not refused
# with a status: the server drops the connection (an SSL EOF at the client).
MAX_REQUEST_BYTES = 3 * 1024 * 1024

Query = list[tuple[str, str]]

# The kubernetes client's kubeconfig loaders carry no type hints: typed once, here.
load_kube_config = cast(Callable[..., None], config.load_kube_config)
load_incluster_config = cast(Callable[..., None], config.load_incluster_config)
list_kube_config_contexts = cast(Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]],
                                 config.list_kube_config_contexts)


def load_api_client(kubeconfig: Path | None = None, context: str | None = None, *,
                    in_cluster_first: bool = True) -> client.ApiClient:
    """An ApiClient from `kubeconfig`, else $KUBECONFIG (a list of files is merged), else the
    in-cluster config and ~/.kube/config; `context` picks a context other than the current one.

    The last two in the order a program expects: in-cluster first for the
    long-running roles (as controller-runtime finds it), ~/.kube/config first
    for a person's command (`in_cluster_first=False`, as kubectl finds it). A
    `context` names a kubeconfig entry, so it skips the in-cluster config.
    Raises `KubeConfigError`, one line saying what is missing and what to do.
    """
    cfg = client.Configuration()
    default = Path("~/.kube/config").expanduser()
    env = os.environ.get("KUBECONFIG") or None
    if kubeconfig is not None:
        if not kubeconfig.is_file():
            raise KubeConfigError(f"kubeconfig {kubeconfig} not found: pass an existing file with --kubeconfig")
        path: str | None = str(kubeconfig)
    elif env is not None:
        if not any(Path(p).expanduser().is_file() for p in env.split(os.pathsep) if p):
            raise KubeConfigError(f"$KUBECONFIG names {env}, which does not exist: fix $KUBECONFIG or pass "
                                  "--kubeconfig")
        path = env
    else:
        path = str(default) if default.is_file() else None
        if context is None and (in_cluster_first or path is None):
            try:
                load_incluster_config(client_configuration=cfg)
                return client.ApiClient(cfg)
            except config.ConfigException:
                pass
        if path is None:
            what = f"no kubeconfig to find context {context!r} in" if context else \
                "no kubeconfig and not running in a pod"
            raise KubeConfigError(f"{what}: pass --kubeconfig, set $KUBECONFIG or create {default}")
    try:
        load_kube_config(config_file=path, context=context, client_configuration=cfg)
    except (config.ConfigException, OSError, ValueError, TypeError) as e:
        if context and f"name {context}" in str(e):
            raise KubeConfigError(f"context {context!r} is not in kubeconfig {path}: name one that "
                                  "'kubectl config get-contexts' lists") from None
        raise KubeConfigError(f"kubeconfig {path} cannot be used ({' '.join(str(e).split())}); check it with "
                              "kubectl config view") from None
    return client.ApiClient(cfg)


def kubeconfig_namespace(kubeconfig: str | None, context: str | None = None) -> str | None:
    """The namespace of the kubeconfig's current context, or of `context` (kubectl's default), if set."""
    try:
        contexts, current = list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, TypeError):
        return None
    chosen: dict[str, Any] | None = current
    if context is not None:
        chosen = next((c for c in contexts or () if c.get("name") == context), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def api_path(group: str, version: str, plural: str, namespace: str | None = None,
             name: str | None = None, subresource: str | None = None) -> str:
    """The path of a collection or one object: core (`group=""`) or a named group."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    ns = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
    tail = f"/{quote(name, safe='')}" if name else ""
    sub = f"/{subresource}" if name and subresource else ""
    return f"{base}{ns}/{plural}{tail}{sub}"


def check_request_size(what: str, body: Any, limit: int) -> None:
    """Refuse, with a message, a body the API server would cut off mid-request."""
    size = len(json.dumps(body, default=str).encode("utf-8"))
    if size > limit:
        raise Invalid(
            f"{what}: the object is {size / 2**20:.1f} MiB as JSON, more than the "
            f"{limit / 2**20:g} MiB the API server accepts in one request (its --max-request-bytes; "
            "this process's --max-request-bytes must match it); split it into smaller objects", 413)


class RestClient:
    """Plain-JSON requests over one `kubernetes.client.ApiClient` (its config, pool and auth)."""

    def __init__(self, api_client: client.ApiClient, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.api_client = api_client
        self.max_request_bytes = max_request_bytes

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None, *, context: str | None = None,
                        max_request_bytes: int = MAX_REQUEST_BYTES) -> "RestClient":
        return cls(load_api_client(kubeconfig, context), max_request_bytes=max_request_bytes)

    def open(self, what: str, method: str, path: str, *, query: Query | None = None, body: Any = None,
             content_type: str = JSON, accept: str = JSON,
             timeout: float | tuple[float, float] = REQUEST_TIMEOUT) -> Any:
        """Send one request; return the urllib3 response of a 2xx answer, unread (blocking).

        The caller reads it (or streams it) and releases the connection. Any
        other answer, or none, raises the `KubeError` for it; `what` names the
        verb and the object ("get Secret ns/name") for its message.
        """
        if body is not None and self.max_request_bytes:
            check_request_size(what, body, self.max_request_bytes)
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        # The body is passed to call_api below, not here: param_serialize would
        # walk it for models to convert, and ours is plain JSON already.
        method, url, headers, _, _ = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            auth_settings=["BearerToken"])
        try:
            response = self.api_client.call_api(method, url, header_params=headers, body=body,
                                                _request_timeout=timeout).response
        except Exception as e:  # urllib3 connection errors, the client's TLS ApiException
            raise from_exception(what, e) from e
        if not 200 <= response.status < 300:
            try:
                data = response.data
            except Exception:  # noqa: BLE001 - the status alone still says what failed
                data = None
            finally:
                response.release_conn()
            raise from_status(what, response.status, data, response.reason)
        return response

    def call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        """One request and its JSON answer ({} when empty), blocking."""
        response = self.open(what, method, path, **kwargs)
        try:
            data = response.data
        except Exception as e:  # the connection dropped mid-answer
            raise from_exception(what, e) from e
        finally:
            response.release_conn()
        return json.loads(data) if data else {}

    async def request(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        """`call` in a thread: one request and its JSON answer."""
        return await asyncio.to_thread(self.call, what, method, path, **kwargs)
