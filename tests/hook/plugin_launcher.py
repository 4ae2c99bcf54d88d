"""A test client that calls a KubeVirt Plugin's domain hook the way virt-launcher does.

On the Plugins path (VEP 190) virt-launcher has no handshake: it takes the socket path from the
Plugin object's ``domainHooks[].sidecar.socketPath``, waits up to 30 s for the socket file to
appear, dials it and calls ``DomainHookService/MutateDomain`` with the domain type
(``libvirt``), the domain XML, the VMI as JSON and the invocation context (``Boot`` or
``MigrationTarget``), under the hook's timeout (at most 20 s here). The answer's ``domain`` is
what it defines; it may call again with that answer when it defines the domain again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from kubevirt_cca.constants import QEMU_NAMESPACE
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2 as plugin_pb2
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2_grpc as plugin_grpc

SOCKET_WAIT = 30.0
CALL_TIMEOUT = 20.0


class PluginCaller:
    """virt-launcher's domain-hook caller for one sidecar socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def wait_for_socket(self, timeout: float = SOCKET_WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not self.socket_path.is_socket():
            if time.monotonic() > deadline:
                raise TimeoutError(f"plugin socket {self.socket_path} did not appear")
            time.sleep(0.02)

    def mutate_domain(
        self,
        domain: bytes,
        vmi: Mapping[str, Any] | bytes,
        *,
        context: str = "Boot",
        domain_type: str = "libvirt",
    ) -> bytes:
        self.wait_for_socket()
        vmi_json = vmi if isinstance(vmi, bytes) else json.dumps(vmi).encode()
        request = plugin_pb2.MutateDomainRequest(
            domain_type=domain_type,
            domain=domain,
            vmi=vmi_json,
            sidecar_context=plugin_pb2.SidecarContext(invocation_context=context),
        )
        with grpc.insecure_channel(f"unix:{self.socket_path}") as channel:
            response = plugin_grpc.DomainHookServiceStub(channel).MutateDomain(
                request, timeout=CALL_TIMEOUT
            )
        return response.domain


def unprefixed(domain: bytes) -> bytes:
    """``domain`` as Go's encoding/xml writes it: qemu elements in a default namespace.

    ``<qemu:commandline>`` becomes ``<commandline xmlns="...qemu/1.0">`` with unprefixed
    ``<arg>`` children, and the root's ``xmlns:qemu`` declaration goes away.
    """
    text = domain.decode()
    text = re.sub(rf"""\s+xmlns:qemu=["']{re.escape(QEMU_NAMESPACE)}["']""", "", text)
    text = text.replace("<qemu:commandline>", f'<commandline xmlns="{QEMU_NAMESPACE}">')
    text = re.sub(r"<(/?)qemu:", r"<\1", text)
    assert "qemu:" not in text.replace(f'xmlns="{QEMU_NAMESPACE}"', "")
    return text.encode()
