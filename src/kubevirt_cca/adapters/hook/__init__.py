"""The hook sidecar's gRPC side: a unix-socket server and KubeVirt's hook protocol on it.

``socket_server`` owns a socket's lifecycle for any gRPC services; ``callbacks`` is KubeVirt's
hook protocol (Info + Callbacks v1alpha1..v1alpha3). A KubeVirt Plugins service
(``DomainHookService``) would be a sibling of ``callbacks`` served on its own socket.
"""

from kubevirt_cca.adapters.hook.callbacks import HookCallbacks, hook_server
from kubevirt_cca.adapters.hook.socket_server import UnixSocketServer, serve_until_stopped

__all__ = ["HookCallbacks", "UnixSocketServer", "hook_server", "serve_until_stopped"]
