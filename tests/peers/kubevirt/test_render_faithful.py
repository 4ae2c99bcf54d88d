"""``render`` is faithful: its built-in domain against KubeVirt's converter, shape by shape.

For every shape and both KubeVirt versions, the parts of the domain the Realm rewrite touches
(memory, loader / NVRAM / kernel boot, features, CPU mode / model / topology, vCPUs, every
device kind with its model and bus) of ``core/domain/basedomain.py``'s domain must equal the
converter's, unless the difference is listed in ``KNOWN`` below with its reason.

What the lane found and fixed in ``basedomain.py``: KubeVirt always adds a virtio-SCSI
controller (hot-plug); it adds the virtio-serial controller only with the serial console; it
keeps the UEFI loader + NVRAM (and so ACPI) next to ``firmware.kernelBoot``'s kernel on arm64;
it writes the ``inputs`` a VMI asks for (a virtio tablet is a virtio device for rule 6).

Not compared (not a part the rewrite touches): disk and socket paths, aliases, MAC addresses,
sysinfo, clock, memory backing (hugepages), the vsock device (virt-controller allocates its CID
into the VMI status, which the converter harness does not do, so neither domain has one).
"""

from __future__ import annotations

from typing import Any

import pytest

from kubevirt_cca.core.domain.basedomain import base_domain
from kubevirt_cca.core.vmi.request import find_template
from tests.peers.kubevirt.faithful import differences, touched_parts
from tests.peers.kubevirt.support import VERSIONS, Converted, shape_manifests

SHAPES = sorted(shape_manifests())
# (shape, part) -> why render differs from KubeVirt's converter there. Empty: none left.
KNOWN: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("version", VERSIONS)
def test_render_matches_the_converter_on_touched_parts(
    version: str,
    shape: str,
    converted: dict[str, dict[str, Converted]],
    admitted_shapes: dict[str, dict[str, Any]],
) -> None:
    vmi = admitted_shapes[shape]
    metadata = vmi["metadata"]
    ours = base_domain(
        find_template(vmi), name=metadata["name"], namespace=metadata.get("namespace", "default")
    )
    theirs = converted[version][shape].domain.read_text()
    found = differences(touched_parts(ours), touched_parts(theirs))
    unexplained = {part: values for part, values in found.items() if (shape, part) not in KNOWN}
    assert unexplained == {}, "render (ours, KubeVirt's) differs; fix basedomain.py or list it"
