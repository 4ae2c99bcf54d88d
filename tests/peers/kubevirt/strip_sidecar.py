"""A hostile hook sidecar for KubeVirt's hook manager (issue 21): ``python -m
tests.peers.kubevirt.strip_sidecar SOCKET...``.

It serves Info (hook point OnDefineDomain) and ``Callbacks`` v1alpha3's OnDefineDomain on each
unix socket given (one sidecar may open several in its directory: one named like ours shadows
ours), with the generated stubs of ``kubevirt_cca.hookproto``, and answers every define
with the domain it got minus ``<launchSecurity>`` and ``<qemu:commandline>``: what a VM owner's
own sidecar could do to a Realm if KubeVirt called it after ours. Each call is logged as one
``call=OnDefineDomain stripped=N`` line on stdout.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from lxml import etree

from kubevirt_cca.hookproto import api_info_pb2, api_v1alpha3_pb2

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
INFO = api_info_pb2.DESCRIPTOR.services_by_name["Info"].full_name
CALLBACKS = api_v1alpha3_pb2.DESCRIPTOR.services_by_name["Callbacks"].full_name


def strip(domain_xml: bytes) -> tuple[bytes, int]:
    """The domain without its Realm: launchSecurity and QEMU command-line blocks removed."""
    root = etree.fromstring(domain_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    gone = [*root.findall("launchSecurity"), *root.findall(f"{{{QEMU_NS}}}commandline")]
    for element in gone:
        root.remove(element)
    return etree.tostring(root), len(gone)


def _info(
    _request: api_info_pb2.InfoParams, _context: grpc.ServicerContext
) -> api_info_pb2.InfoResult:
    return api_info_pb2.InfoResult(
        name="strip",
        versions=["v1alpha3"],
        hookPoints=[api_info_pb2.HookPoint(name="OnDefineDomain", priority=0)],
    )


def _define(
    request: api_v1alpha3_pb2.OnDefineDomainParams, _context: grpc.ServicerContext
) -> api_v1alpha3_pb2.OnDefineDomainResult:
    domain, removed = strip(request.domainXML)
    print(f"call=OnDefineDomain stripped={removed}", flush=True)
    return api_v1alpha3_pb2.OnDefineDomainResult(domainXML=domain)


def _shutdown(
    _request: api_v1alpha3_pb2.ShutdownParams, _context: grpc.ServicerContext
) -> api_v1alpha3_pb2.ShutdownResult:
    return api_v1alpha3_pb2.ShutdownResult()


def serve(sockets: list[Path]) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                INFO,
                {
                    "Info": grpc.unary_unary_rpc_method_handler(
                        _info,
                        request_deserializer=api_info_pb2.InfoParams.FromString,
                        response_serializer=api_info_pb2.InfoResult.SerializeToString,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                CALLBACKS,
                {
                    "OnDefineDomain": grpc.unary_unary_rpc_method_handler(
                        _define,
                        request_deserializer=api_v1alpha3_pb2.OnDefineDomainParams.FromString,
                        response_serializer=api_v1alpha3_pb2.OnDefineDomainResult.SerializeToString,
                    ),
                    "Shutdown": grpc.unary_unary_rpc_method_handler(
                        _shutdown,
                        request_deserializer=api_v1alpha3_pb2.ShutdownParams.FromString,
                        response_serializer=api_v1alpha3_pb2.ShutdownResult.SerializeToString,
                    ),
                },
            ),
        )
    )
    for socket in sockets:
        socket.parent.mkdir(parents=True, exist_ok=True)
        server.add_insecure_port(f"unix:{socket}")
    server.start()
    return server


def main(sockets: list[str]) -> int:
    server = serve([Path(socket) for socket in sockets])
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    server.stop(grace=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
