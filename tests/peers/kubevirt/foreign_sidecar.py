"""Someone else's hook sidecar, for KubeVirt's hook manager to call before ours.

``python -m tests.peers.kubevirt.foreign_sidecar SOCKET_DIR`` serves KubeVirt's hook protocol
(the same gRPC transport as ours) on ``SOCKET_DIR/foreign.sock`` until SIGTERM. Its
OnDefineDomain appends to the domain the XML fragment the VMI carries in the annotation
``FOREIGN_ANNOTATION`` (nothing when it has none): what a VM owner's sidecar that runs before
ours could return. Put in ``hook-sidecar-0`` with ours in ``hook-sidecar-1``, the hook manager
calls it first (it calls sidecars in the order it finds their directories).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from lxml import etree

from kubevirt_cca.adapters.hook import HookCallbacks, UnixSocketServer, serve_until_stopped
from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.hook import DefinedDomain

FOREIGN_ANNOTATION = "example.org/foreign-domain-xml"
SOCKET_NAME = "foreign.sock"


def add_foreign(domain_xml: bytes, vmi_json: bytes, _settings: Settings) -> DefinedDomain:
    fragment = json.loads(vmi_json)["metadata"].get("annotations", {}).get(FOREIGN_ANNOTATION)
    if fragment is None:
        return DefinedDomain(domain_xml=domain_xml, vmi="foreign", realm=False)
    root = etree.fromstring(domain_xml)
    root.append(etree.fromstring(fragment))
    return DefinedDomain(domain_xml=etree.tostring(root), vmi="foreign", realm=False)


def main(socket_dir: str) -> int:
    stop = threading.Event()
    callbacks = HookCallbacks(Settings(), on_shutdown=stop.set, decide=add_foreign)
    server = UnixSocketServer(Path(socket_dir) / SOCKET_NAME, callbacks.handlers(), stop_event=stop)
    serve_until_stopped([server])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
