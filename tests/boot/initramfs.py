"""The guest side of the boot lane: a tiny busybox initramfs whose init checks virtio features.

The init loads the kernel's virtio drivers, waits until every virtio PCI function has a virtio
device with a bound driver, then reads ``/sys/bus/virtio/devices/*/features`` (one character per
feature bit, bit 0 first) and prints one line per device and a result marker:

    KVCCA-BOOT-RESULT: PASS devices=N
    KVCCA-BOOT-RESULT: FAIL devices=N failed=M pci=P

PASS means: at least one virtio device, as many virtio devices as virtio PCI functions, and every
one of them bound to its driver with VIRTIO_F_ACCESS_PLATFORM (bit 33) negotiated. That is what a
Linux Realm guest demands of each device before it will use it. Then the init powers the guest
off (PSCI), so libvirt sees the domain shut off.

The archive is written here in the kernel's ``newc`` cpio format (no cpio tool needed) and
includes a ``/dev/console`` node, so the init's output reaches the serial console.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RESULT_PREFIX = "KVCCA-BOOT-RESULT:"
DEVICE_PREFIX = "KVCCA-BOOT-DEVICE:"
ACCESS_PLATFORM_BIT = 33

# Drivers for every virtio device a KubeVirt domain can carry. Their dependencies are found from
# each module's own ``depends=`` field; built-in ones (virtio, virtio_ring) need no file.
VIRTIO_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "virtio_scsi",
    "virtio_input",
    "virtio_gpu",
    "virtio_balloon",
    "vmw_vsock_virtio_transport",
)

INIT_SCRIPT = r"""#!/bin/busybox sh
# kubevirt-cca boot lane: do the guest's virtio devices negotiate VIRTIO_F_ACCESS_PLATFORM?
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin
echo "KVCCA-BOOT: init running on $(uname -r) $(uname -m)"
for module in $(cat /etc/boot-modules); do
  insmod "/lib/modules/$module" || echo "KVCCA-BOOT: insmod $module failed"
done

virtio_pci_functions() {
  n=0
  for dev in /sys/bus/pci/devices/*; do
    [ "$(cat "$dev/vendor")" = 0x1af4 ] || continue
    id=$(( $(cat "$dev/device") ))
    # 0x1000-0x103f transitional, 0x1040-0x107f modern virtio functions
    if [ "$id" -ge 4096 ] && [ "$id" -le 4223 ]; then n=$((n + 1)); fi
  done
  echo "$n"
}

settled() {
  [ "$(ls /sys/bus/virtio/devices | wc -l)" -ge "$(virtio_pci_functions)" ] || return 1
  for dev in /sys/bus/virtio/devices/*; do
    [ -e "$dev" ] || continue
    [ -e "$dev/driver" ] || return 1
  done
  return 0
}

tries=0
while ! settled && [ "$tries" -lt 50 ]; do
  sleep 0.2
  tries=$((tries + 1))
done

total=0
failed=0
for dev in /sys/bus/virtio/devices/*; do
  [ -e "$dev/features" ] || continue
  total=$((total + 1))
  bit=$(cut -c__BIT_COLUMN__ "$dev/features")
  driver=none
  [ -e "$dev/driver" ] && driver=$(basename "$(readlink "$dev/driver")")
  pci=$(basename "$(readlink -f "$dev/..")")
  id=$(cat "$dev/device")
  echo "__DEVICE_PREFIX__ $(basename "$dev") pci=$pci id=$id driver=$driver access_platform=$bit"
  if [ "$driver" = none ] || [ "$bit" != 1 ]; then failed=$((failed + 1)); fi
done
functions=$(virtio_pci_functions)
if [ "$total" -gt 0 ] && [ "$failed" -eq 0 ] && [ "$total" -eq "$functions" ]; then
  echo "__RESULT_PREFIX__ PASS devices=$total"
else
  echo "__RESULT_PREFIX__ FAIL devices=$total failed=$failed pci=$functions"
fi
sync
poweroff -f
"""


@dataclass(frozen=True)
class GuestFiles:
    """Where the arm64 guest kernel, busybox and kernel modules were unpacked."""

    root: Path  # the folder the Debian packages were unpacked into (dpkg -x)

    @property
    def kernel(self) -> Path:
        return _only(sorted((self.root / "boot").glob("vmlinuz-*")), "vmlinuz-*")

    @property
    def busybox(self) -> Path:
        return self.root / "bin" / "busybox"

    @property
    def modules_dir(self) -> Path:
        return _only(sorted((self.root / "lib" / "modules").iterdir()), "lib/modules/*")


def init_script() -> str:
    """The guest's /init, with the marker strings and the feature column filled in."""
    return (
        INIT_SCRIPT.replace("__BIT_COLUMN__", str(ACCESS_PLATFORM_BIT + 1))
        .replace("__DEVICE_PREFIX__", DEVICE_PREFIX)
        .replace("__RESULT_PREFIX__", RESULT_PREFIX)
    )


def build_initramfs(guest: GuestFiles, out: Path) -> list[str]:
    """Write the gzip'd newc initramfs to ``out``; return the modules in load order."""
    modules = module_load_order(guest.modules_dir, VIRTIO_MODULES)
    writer = Cpio()
    for folder in ("bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp"):
        writer.directory(folder)
    writer.char_device("dev/console", major=5, minor=1)
    writer.file("bin/busybox", guest.busybox.read_bytes(), mode=0o755)
    writer.file("init", init_script().encode(), mode=0o755)
    load_list = []
    for index, path in enumerate(modules):
        name = f"{index:02d}-{path.name}"
        writer.file(f"lib/modules/{name}", path.read_bytes(), mode=0o644)
        load_list.append(name)
    writer.file("etc/boot-modules", ("\n".join(load_list) + "\n").encode(), mode=0o644)
    out.write_bytes(gzip.compress(writer.finish(), compresslevel=1))
    return [p.stem for p in modules]


# --- kernel modules ----------------------------------------------------------------------------

_DEPENDS = re.compile(rb"(?:^|\x00)depends=([^\x00]*)\x00")


def _module_name(path: Path) -> str:
    return path.name.removesuffix(".ko").replace("-", "_")


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[Path]:
    """The ``.ko`` files for ``wanted`` and their dependencies, dependencies first."""
    index = {_module_name(p): p for p in modules_dir.rglob("*.ko")}
    builtin_file = modules_dir / "modules.builtin"
    builtin = (
        {
            _module_name(Path(line.strip()))
            for line in builtin_file.read_text().splitlines()
            if line.strip()
        }
        if builtin_file.exists()
        else set()
    )
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise LookupError(f"kernel module {name} not found under {modules_dir}")
        path = index[name]
        match = _DEPENDS.search(path.read_bytes())
        for dependency in match.group(1).decode().split(",") if match else []:
            if dependency:
                visit(dependency.replace("-", "_"))
        order.append(path)

    for name in wanted:
        visit(name)
    return order


# --- newc cpio ---------------------------------------------------------------------------------


class Cpio:
    """A minimal writer of the ``newc`` cpio format the Linux kernel unpacks as initramfs.

    Also builds the realm lane's initramfs (``tests/realm/conftest.py``).
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._inode = 1

    def directory(self, name: str) -> None:
        self._entry(name, mode=0o040755, data=b"", nlink=2)

    def file(self, name: str, data: bytes, *, mode: int) -> None:
        self._entry(name, mode=0o100000 | mode, data=data)

    def char_device(self, name: str, *, major: int, minor: int) -> None:
        self._entry(name, mode=0o020600, data=b"", rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", mode=0, data=b"", inode=0)
        return b"".join(self._chunks)

    def _entry(
        self,
        name: str,
        *,
        mode: int,
        data: bytes,
        nlink: int = 1,
        rdev: tuple[int, int] = (0, 0),
        inode: int | None = None,
    ) -> None:
        encoded = name.encode() + b"\x00"
        fields = (
            self._inode if inode is None else inode,
            mode,
            0,
            0,
            nlink,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,
        )
        self._inode += 1
        header = b"070701" + b"".join(b"%08x" % value for value in fields)
        self._chunks.append(header + encoded + _pad(len(header) + len(encoded)))
        self._chunks.append(data + _pad(len(data)))


def _pad(length: int) -> bytes:
    return b"\x00" * (-length % 4)


def _only(paths: list[Path], pattern: str) -> Path:
    if len(paths) != 1:
        raise LookupError(f"expected exactly one {pattern}, found {[str(p) for p in paths]}")
    return paths[0]
