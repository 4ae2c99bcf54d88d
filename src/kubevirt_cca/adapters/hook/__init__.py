"""The hook sidecar's gRPC side: a unix-socket server and KubeVirt's hook protocol on it.

``socket_server`` owns a socket's lifecycle for any gRPC services; ``callbacks`` is KubeVirt's
hook protocol (Info + Callbacks v1alpha1..v1alpha3); ``plugin`` is KubeVirt Plugins'
``DomainHookService`` (VEP 190), served on its own socket.
"""

from kubevirt_cca.adapters.hook.callbacks import HookCallbacks, hook_server
from kubevirt_cca.adapters.hook.domain_hook_service import DomainHookService, plugin_server
from kubevirt_cca.adapters.hook.socket_server import UnixSocketServer, serve_until_stopped

__all__ = [
    "DomainHookService",
    "HookCallbacks",
    "UnixSocketServer",
    "hook_server",
    "plugin_server",
    "serve_until_stopped",
]
