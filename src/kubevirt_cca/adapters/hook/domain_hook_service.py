"""KubeVirt Plugins' domain hook over gRPC: ``DomainHookService/MutateDomain`` on one socket.

virt-launcher dials the socket path named in the ``Plugin`` object (no Info handshake), waits
up to 30 s for it to appear, and calls ``MutateDomain`` for each domain definition. The
decision is :func:`kubevirt_cca.core.hook.mutate_domain.mutate_domain`; ``calls.define`` (shared
with the hook sidecar) translates its refusals into gRPC statuses (what virt-launcher puts in the
VMI's events) and logs one line per call.

The socket is created mode 0660: our container runs as uid/gid 107 (qemu), the user of
virt-launcher's compute container in non-root mode; root-mode launchers are root anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import grpc

from kubevirt_cca.adapters.hook.calls import define
from kubevirt_cca.adapters.hook.socket_server import DEFAULT_WORKERS, UnixSocketServer
from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.hook import DefinedDomain
from kubevirt_cca.core.hook.mutate_domain import MutateCall, check_plugin_settings, mutate_domain
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2 as plugin_pb2

logger = logging.getLogger(__name__)

SERVICE = plugin_pb2.DESCRIPTOR.services_by_name["DomainHookService"].full_name
MUTATE_DOMAIN = "MutateDomain"
SOCKET_MODE = 0o660


Decide = Callable[[MutateCall, Settings], DefinedDomain]


class DomainHookService:
    """The ``MutateDomain`` handler for one set of settings (checked on construction).

    ``decide`` is the decision the transport carries (the core's ``mutate_domain``).
    """

    def __init__(self, settings: Settings, *, decide: Decide = mutate_domain) -> None:
        check_plugin_settings(settings)
        self.settings = settings
        self._decide = decide

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    MUTATE_DOMAIN: grpc.unary_unary_rpc_method_handler(
                        self.mutate_domain,
                        request_deserializer=plugin_pb2.MutateDomainRequest.FromString,
                        response_serializer=plugin_pb2.MutateDomainResponse.SerializeToString,
                    ),
                },
            )
        ]

    def mutate_domain(
        self, request: plugin_pb2.MutateDomainRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.MutateDomainResponse:
        """The rewritten (or unchanged) domain; aborts the call to refuse."""
        invocation = request.sidecar_context.invocation_context
        call = MutateCall(
            domain_type=request.domain_type,
            domain=request.domain,
            vmi=request.vmi,
            invocation_context=invocation,
        )
        defined = define(
            context,
            lambda: self._decide(call, self.settings),
            fields=(
                ("call", MUTATE_DOMAIN),
                ("context", invocation or "-"),
                ("domain_type", request.domain_type or "-"),
            ),
            dialect=self.settings.dialect.value,
            internal_error="kubevirt-cca plugin: internal error while defining the domain; "
            "the VM is not started (see the kubevirt-cca-plugin container's log)",
        )
        return plugin_pb2.MutateDomainResponse(domain=defined.domain_xml)


def plugin_server(
    socket_path: Path,
    settings: Settings,
    *,
    stop_event: threading.Event | None = None,
    max_workers: int = DEFAULT_WORKERS,
    decide: Decide = mutate_domain,
) -> UnixSocketServer:
    """The Plugin domain hook's server on ``socket_path`` (not started yet).

    Raises :class:`SettingsError` when ``settings`` cannot be served on the Plugins path.
    """
    service = DomainHookService(settings, decide=decide)
    return UnixSocketServer(
        socket_path,
        service.handlers(),
        max_workers=max_workers,
        stop_event=stop_event,
        socket_mode=SOCKET_MODE,
        option="--plugin-socket",
    )
