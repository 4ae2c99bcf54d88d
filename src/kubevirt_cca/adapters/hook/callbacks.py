"""KubeVirt's hook sidecar protocol over gRPC: ``Info`` and ``Callbacks`` v1alpha1..v1alpha3.

Every version's ``OnDefineDomain`` goes through one function (the versions differ only in
their message classes), dispatched from one table; methods a version has but kubevirt-cca does
not implement (``PreCloudInitIso``) answer UNIMPLEMENTED, and Info does not advertise them.
The decision itself is :func:`kubevirt_cca.core.hook.decision.define_domain`; ``calls.define``
(shared with the Plugins server) translates its refusals into gRPC statuses and logs one line
per call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from kubevirt_cca.adapters.hook.calls import define
from kubevirt_cca.adapters.hook.socket_server import DEFAULT_WORKERS, UnixSocketServer
from kubevirt_cca.constants import HOOK_NAME, HOOK_SOCKET_NAME, ON_DEFINE_DOMAIN
from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.hook import DefinedDomain, define_domain
from kubevirt_cca.hookproto import (
    api_info_pb2,
    api_v1alpha1_pb2,
    api_v1alpha2_pb2,
    api_v1alpha3_pb2,
)

logger = logging.getLogger(__name__)


def _service(file: FileDescriptor, name: str = "Callbacks") -> str:
    return file.services_by_name[name].full_name


SHUTDOWN = "Shutdown"
HOOK_PRIORITY = 0
INFO_SERVICE = _service(api_info_pb2.DESCRIPTOR, "Info")


class _DefineParams(Protocol):
    domainXML: bytes
    vmi: bytes


@dataclass(frozen=True)
class CallbackVersion:
    """One version of the ``Callbacks`` service: its name and its message classes."""

    version: str
    service: str
    params: Callable[[bytes], _DefineParams]
    result: Callable[[bytes], Message]
    shutdown: tuple[Callable[[bytes], Message], Callable[[], Message]] | None = None
    """``(ShutdownParams.FromString, ShutdownResult)`` for versions that have Shutdown."""


# Oldest first; Info lists them in this order and virt-launcher picks the newest it knows.
VERSIONS: tuple[CallbackVersion, ...] = (
    CallbackVersion(
        version="v1alpha1",
        service=_service(api_v1alpha1_pb2.DESCRIPTOR),
        params=api_v1alpha1_pb2.OnDefineDomainParams.FromString,
        result=lambda xml: api_v1alpha1_pb2.OnDefineDomainResult(domainXML=xml),
    ),
    CallbackVersion(
        version="v1alpha2",
        service=_service(api_v1alpha2_pb2.DESCRIPTOR),
        params=api_v1alpha2_pb2.OnDefineDomainParams.FromString,
        result=lambda xml: api_v1alpha2_pb2.OnDefineDomainResult(domainXML=xml),
    ),
    CallbackVersion(
        version="v1alpha3",
        service=_service(api_v1alpha3_pb2.DESCRIPTOR),
        params=api_v1alpha3_pb2.OnDefineDomainParams.FromString,
        result=lambda xml: api_v1alpha3_pb2.OnDefineDomainResult(domainXML=xml),
        shutdown=(api_v1alpha3_pb2.ShutdownParams.FromString, api_v1alpha3_pb2.ShutdownResult),
    ),
)

Decide = Callable[[bytes, bytes, Settings], DefinedDomain]


class HookCallbacks:
    """The hook protocol's handlers; ``on_shutdown`` runs when virt-launcher calls Shutdown.

    ``decide`` is the decision the transport carries (the core's ``define_domain``).
    """

    def __init__(
        self, settings: Settings, *, on_shutdown: Callable[[], None], decide: Decide = define_domain
    ) -> None:
        self.settings = settings
        self._on_shutdown = on_shutdown
        self._decide = decide

    def info_result(self) -> api_info_pb2.InfoResult:
        return api_info_pb2.InfoResult(
            name=HOOK_NAME,
            versions=[v.version for v in VERSIONS],
            hookPoints=[
                api_info_pb2.HookPoint(name=ON_DEFINE_DOMAIN, priority=HOOK_PRIORITY),
                api_info_pb2.HookPoint(name=SHUTDOWN, priority=HOOK_PRIORITY),
            ],
        )

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """gRPC handlers for Info and every ``Callbacks`` version."""
        handlers = [
            grpc.method_handlers_generic_handler(
                INFO_SERVICE,
                {
                    "Info": grpc.unary_unary_rpc_method_handler(
                        self._info,
                        request_deserializer=api_info_pb2.InfoParams.FromString,
                        response_serializer=_serialize,
                    ),
                },
            )
        ]
        for version in VERSIONS:
            methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
                ON_DEFINE_DOMAIN: grpc.unary_unary_rpc_method_handler(
                    self._define_handler(version),
                    request_deserializer=version.params,
                    response_serializer=_serialize,
                ),
            }
            if version.shutdown is not None:
                params, result = version.shutdown
                methods[SHUTDOWN] = grpc.unary_unary_rpc_method_handler(
                    self._shutdown_handler(version.version, result),
                    request_deserializer=params,
                    response_serializer=_serialize,
                )
            handlers.append(grpc.method_handlers_generic_handler(version.service, methods))
        return handlers

    def _info(
        self, _request: api_info_pb2.InfoParams, _context: grpc.ServicerContext
    ) -> api_info_pb2.InfoResult:
        logger.info("call=Info outcome=ok versions=%s", ",".join(v.version for v in VERSIONS))
        return self.info_result()

    def _define_handler(
        self,
        version: CallbackVersion,
    ) -> Callable[[_DefineParams, grpc.ServicerContext], Message]:
        def handle(request: _DefineParams, context: grpc.ServicerContext) -> Message:
            return version.result(self.on_define_domain(request, context, version.version))

        return handle

    def on_define_domain(
        self, request: _DefineParams, context: grpc.ServicerContext, version: str
    ) -> bytes:
        """The rewritten (or unchanged) domain XML; aborts the call to refuse."""
        defined = define(
            context,
            lambda: self._decide(request.domainXML, request.vmi, self.settings),
            fields=(("call", ON_DEFINE_DOMAIN), ("version", version)),
            dialect=self.settings.dialect.value,
            internal_error="kubevirt-cca hook: internal error while defining the domain; "
            "the VM is not started (see the hook sidecar container's log)",
        )
        return defined.domain_xml

    def _shutdown_handler(
        self,
        version: str,
        result: Callable[[], Message],
    ) -> Callable[[Message, grpc.ServicerContext], Message]:
        def handle(_request: Message, _context: grpc.ServicerContext) -> Message:
            logger.info("call=%s version=%s outcome=ok", SHUTDOWN, version)
            self._on_shutdown()
            return result()

        return handle


def hook_server(
    socket_dir: Path,
    settings: Settings,
    *,
    stop_event: threading.Event | None = None,
    max_workers: int = DEFAULT_WORKERS,
) -> UnixSocketServer:
    """The hook sidecar's server on ``socket_dir/HOOK_SOCKET_NAME`` (not started yet).

    virt-launcher's Shutdown call sets ``stop_event`` (the server's own when not given).
    """
    stop = stop_event if stop_event is not None else threading.Event()
    callbacks = HookCallbacks(settings, on_shutdown=stop.set)
    return UnixSocketServer(
        socket_dir / HOOK_SOCKET_NAME,
        callbacks.handlers(),
        max_workers=max_workers,
        stop_event=stop,
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
