"""Boots of the peers lane's shapes: what libvirt really gets from KubeVirt and our hook.

A shape-varied subset of ``tests/data/peers/vmis`` goes through KubeVirt's converter (main) and
our ``kubevirt-cca hook`` process under virt-launcher's hook manager (``hookclient``, three
defines, as a start does); the **last define** is what the boot lane boots. The hook runs with
the lane's stand-in firmware (no CCA build exists here). Needs ``../shared/peers`` like the peers
lane, and skips or fails the same way (``KUBEVIRT_CCA_PEERS_REQUIRED``).

* ``headless``: no serial console, so KubeVirt writes no virtio-serial controller and the rewrite
  must name the one libvirt would add (the peers lane's second finding);
* ``multi-nic``: three virtio NICs (masquerade, two bridges, multi-queue);
* ``many-disks``: virtio, SCSI disk and CD-ROM, cloud-init NoCloud;
* ``kernel-boot``: ``firmware.kernelBoot``: KubeVirt keeps UEFI, so the firmware (as ROM)
  starts the kernel.
"""

from __future__ import annotations

import ctypes.util
import tempfile
import threading
from pathlib import Path

import yaml

from kubevirt_cca.core.cluster.settings import Dialect
from tests.boot.cases import FIRMWARE
from tests.peers.binaries import peers_unavailable, unpack
from tests.peers.kubevirt.support import (
    SHAPES_DIR,
    PeerBins,
    admitted_vmi,
    convert_batch,
    hook_process,
    hookclient,
    last_error,
    sidecar_cluster,
)

VERSION = "main"
BOOT_SHAPES: dict[str, Dialect] = {
    "headless": Dialect.VEP,
    "multi-nic": Dialect.QEMU_COMMANDLINE,
    "many-disks": Dialect.OPENEULER,
    "kernel-boot": Dialect.VEP,
}
_LOCK = threading.Lock()
_DEFINED: dict[str, str] = {}


def kubevirt_define(shape: str) -> str:
    """The last domain string libvirt would get for ``shape`` (computed once for all shapes)."""
    with _LOCK:
        if not _DEFINED:
            _DEFINED.update(_define_all())
        return _DEFINED[shape]


def _define_all() -> dict[str, str]:
    if ctypes.util.find_library("virt") is None:
        peers_unavailable("libvirt0 is not installed (kubevirt-launcher-peer links libvirt)")
    folder = unpack(f"kubevirt-api-peer-{VERSION}", f"kubevirt-launcher-peer-{VERSION}")
    bins = PeerBins(
        version=VERSION,
        api=folder / f"kubevirt-api-peer-{VERSION}",
        launcher=folder / f"kubevirt-launcher-peer-{VERSION}",
    )
    vmis = {
        shape: admitted_vmi(
            yaml.safe_load((SHAPES_DIR / f"{shape}.yaml").read_text()), sidecar_cluster(dialect)
        )
        for shape, dialect in BOOT_SHAPES.items()
    }
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="kvcca-boot-peers-") as scratch:
        base = Path(scratch)
        converted = convert_batch(bins, vmis, base / "convert")
        for shape, dialect in BOOT_SHAPES.items():
            hooks = base / f"hooks-{shape}"
            with hook_process(
                hooks / "hook-sidecar-0", "--dialect", dialect.value, "--firmware", FIRMWARE
            ):
                result = hookclient(
                    bins, hooks_dir=hooks, converted=converted[shape], prefix=base / shape
                )
            assert result.returncode == 0, last_error(result.stderr)
            out[shape] = result.defines[-1]
    return out
