"""The only package that imports `kubernetes`: one way to the API server.

    rest.py       RestClient: the one request function (plain JSON through the
                  kubernetes ApiClient's auth, TLS and proxy), kubeconfig loading
    errors.py     the one error tree (KubeError: NotFound, Conflict, Forbidden,
                  Invalid, Unreachable/Timeout) and the one translation into it
    discovery.py  DiscoveryCache: the served kinds, one cache per process
    apply.py      ClusterApi: objects of any kind (server-side apply, get,
                  patch, list, delete), holding that one discovery
    client.py     Kube: HelmReleases, values sources, release Secrets, events;
                  `Kube.cluster` is the operator's one ClusterApi
    lease.py      LeaseStore: the leader-election Lease
    watch.py      ResourceWatcher: list + watch as raw JSON events

Every request blocks in the client library, so each public coroutine here
runs it in a thread (`asyncio.to_thread`); callers never block the loop.
"""

from helm_operator.kube.apply import ClusterApi, ObjectRef
from helm_operator.kube.client import Kube
from helm_operator.kube.errors import (
    Conflict, Forbidden, Invalid, KubeConfigError, KubeError, NotFound, Timeout, Unreachable,
)

__all__ = ["ClusterApi", "Conflict", "Forbidden", "Invalid", "Kube", "KubeConfigError", "KubeError", "NotFound",
           "ObjectRef", "Timeout", "Unreachable"]
