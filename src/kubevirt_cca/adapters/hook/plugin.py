"""KubeVirt Plugins' domain hook over gRPC: ``DomainHookService/MutateDomain`` on one socket.

virt-launcher dials the socket path named in the ``Plugin`` object (no Info handshake), waits
up to 30 s for it to appear, and calls ``MutateDomain`` for each domain definition. The decision
is :func:`kubevirt_cca.core.plugin_hook.mutate_domain`; this module translates its refusals into
gRPC statuses (what virt-launcher puts in the VMI's events) and logs one line per call.

The socket is created mode 0660: our container runs as uid/gid 107 (qemu), the user of
virt-launcher's compute container in non-root mode; root-mode launchers are root anyway.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import grpc

from kubevirt_cca.adapters.hook.callbacks import status_for
from kubevirt_cca.adapters.hook.socket_server import DEFAULT_WORKERS, UnixSocketServer
from kubevirt_cca.core.hook import UNKNOWN_VMI
from kubevirt_cca.core.plugin_hook import MutateCall, check_plugin_settings, mutate_domain
from kubevirt_cca.core.settings import Settings
from kubevirt_cca.errors import HookError, SettingsError
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2 as plugin_pb2

logger = logging.getLogger(__name__)

SERVICE = plugin_pb2.DESCRIPTOR.services_by_name["DomainHookService"].full_name
MUTATE_DOMAIN = "MutateDomain"
SOCKET_MODE = 0o660


class DomainHookService:
    """The ``MutateDomain`` handler for one set of settings (checked on construction)."""

    def __init__(self, settings: Settings) -> None:
        check_plugin_settings(settings)
        self.settings = settings

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [grpc.method_handlers_generic_handler(SERVICE, {
            MUTATE_DOMAIN: grpc.unary_unary_rpc_method_handler(
                self.mutate_domain,
                request_deserializer=plugin_pb2.MutateDomainRequest.FromString,
                response_serializer=plugin_pb2.MutateDomainResponse.SerializeToString,
            ),
        })]

    def mutate_domain(self, request: plugin_pb2.MutateDomainRequest,
                      context: grpc.ServicerContext) -> plugin_pb2.MutateDomainResponse:
        """The rewritten (or unchanged) domain; aborts the call to refuse."""
        started = time.perf_counter()
        invocation = request.sidecar_context.invocation_context
        call = MutateCall(domain_type=request.domain_type, domain=request.domain,
                          vmi=request.vmi, invocation_context=invocation)
        try:
            defined = mutate_domain(call, self.settings)
        except HookError as exc:
            code = (grpc.StatusCode.FAILED_PRECONDITION
                    if isinstance(exc.__cause__, SettingsError) else status_for(exc))
            logger.warning(
                "call=%s context=%s domain_type=%s vmi=%s outcome=refused code=%s "
                "duration_ms=%.2f message=%s", MUTATE_DOMAIN, invocation or "-",
                request.domain_type or "-", exc.vmi, code.name, _ms_since(started),
                json.dumps(str(exc)),
            )
            context.abort(code, str(exc))
        except Exception:
            # Fail closed on anything unforeseen: no domain at all rather than a plain one.
            logger.exception("call=%s context=%s vmi=%s outcome=error code=INTERNAL "
                             "duration_ms=%.2f", MUTATE_DOMAIN, invocation or "-", UNKNOWN_VMI,
                             _ms_since(started))
            context.abort(
                grpc.StatusCode.INTERNAL,
                "kubevirt-cca plugin: internal error while defining the domain; the VM is not "
                "started (see the kubevirt-cca-plugin container's log)",
            )
        logger.info(
            "call=%s context=%s domain_type=%s vmi=%s dialect=%s outcome=%s duration_ms=%.2f",
            MUTATE_DOMAIN, invocation or "-", request.domain_type, defined.vmi,
            self.settings.dialect.value, "rewritten" if defined.realm else "unchanged",
            _ms_since(started),
        )
        return plugin_pb2.MutateDomainResponse(domain=defined.domain_xml)


def plugin_server(socket_path: Path, settings: Settings, *,
                  stop_event: threading.Event | None = None,
                  max_workers: int = DEFAULT_WORKERS) -> UnixSocketServer:
    """The Plugin domain hook's server on ``socket_path`` (not started yet).

    Raises :class:`SettingsError` when ``settings`` cannot be served on the Plugins path.
    """
    service = DomainHookService(settings)
    return UnixSocketServer(socket_path, service.handlers(), max_workers=max_workers,
                            stop_event=stop_event, socket_mode=SOCKET_MODE,
                            option="--plugin-socket")


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
