"""The only package that imports `kubernetes`: reads, patches, events, watches.

Every call is blocking in the client library, so each public coroutine here
runs it in a thread (`asyncio.to_thread`); callers never block the loop.
Errors are translated at this boundary into `KubeError` and `NotFound`.
"""

from helm_operator.kube.client import Kube, KubeError, NotFound, ObjectRef

__all__ = ["Kube", "KubeError", "NotFound", "ObjectRef"]
