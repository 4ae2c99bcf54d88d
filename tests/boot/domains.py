"""Define, start and watch one domain under libvirt; read what its guest reported.

Every failure raises ``AssertionError`` whose message carries what a person needs to see: the
libvirt error, the domain XML libvirt was given, the guest's serial log, QEMU's log.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from tests.boot.daemons import virsh
from tests.boot.initramfs import DEVICE_PREFIX, RESULT_PREFIX
from tests.boot.tcg import Adapted

QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")
# The run's PID in every name: runs side by side on one machine never touch each other's domains.
DOMAIN_PREFIX = f"kvcca-boot-{os.getpid()}-"
_LANE_DOMAIN = re.compile(r"kvcca-boot-([0-9]+)-")
_RESULT = re.compile(re.escape(RESULT_PREFIX) + r" (PASS|FAIL)\b[^\r\n]*")
_DEVICE = re.compile(re.escape(DEVICE_PREFIX) + r" [^\r\n]*")


@dataclass(frozen=True)
class Boot:
    """What one boot showed: libvirt's view of the domain and the guest's report."""

    name: str
    defined_xml: str  # 'virsh dumpxml' right after define: what libvirt kept
    serial: str
    verdict: str  # PASS or FAIL, from the guest
    result_line: str
    device_lines: tuple[str, ...]
    shut_off: bool  # the guest powered itself off after reporting

    def describe(self) -> str:
        return f"guest serial log of {self.name}:\n{_tail(self.serial, 60)}"


def boot(adapted: Adapted, *, name: str, serial_log: Path, timeout: float = 90) -> Boot:
    """Define and start the domain, wait for the guest's verdict, then remove the domain."""
    remove_domain(name)
    xml_file = serial_log.parent / "domain.xml"
    xml_file.write_text(adapted.xml)
    changes = "\n".join(f"  - {line}" for line in adapted.changes)
    defined = virsh("define", str(xml_file))
    if defined.returncode != 0:
        raise AssertionError(
            f"libvirt refused to define {name}: {defined.stderr.strip()}\n"
            f"lane adaptations:\n{changes}\ndomain XML:\n{adapted.xml}"
        )
    try:
        dumped = virsh("dumpxml", name)
        if dumped.returncode != 0:
            raise AssertionError(f"virsh dumpxml {name} failed: {dumped.stderr.strip()}")
        started = virsh("start", name)
        if started.returncode != 0:
            raise AssertionError(
                f"libvirt could not start {name}: {started.stderr.strip()}\n"
                f"{_qemu_log(name)}\nlane adaptations:\n{changes}"
            )
        serial = _wait_for_verdict(name, serial_log, timeout)
        match = _RESULT.search(serial)
        if match is None:
            raise AssertionError(
                f"no {RESULT_PREFIX} line from the guest of {name} (waited up to {timeout:.0f} s) "
                f"(domain state: {virsh('domstate', name).stdout.strip()})\n"
                f"guest serial log:\n{_tail(serial, 80)}\n{_qemu_log(name)}"
            )
        shut_off = _wait_for_shutoff(name, 20)
        serial = _read(serial_log)
        return Boot(
            name=name,
            defined_xml=dumped.stdout,
            serial=serial,
            verdict=match.group(1),
            result_line=match.group(0).strip(),
            device_lines=tuple(line.strip() for line in _DEVICE.findall(serial)),
            shut_off=shut_off,
        )
    finally:
        remove_domain(name)


def remove_domain(name: str) -> None:
    """Stop and undefine ``name`` if libvirt knows it (leftovers of an interrupted run too)."""
    for _ in range(20):
        if virsh("domstate", name).returncode != 0:
            return
        virsh("destroy", name)
        undefined = virsh("undefine", "--nvram", name)
        if undefined.returncode == 0 and virsh("domstate", name).returncode != 0:
            return
        time.sleep(0.25)
    raise AssertionError(f"could not remove domain {name}: {undefined.stderr.strip()}")


def remove_lane_domains() -> None:
    """Remove this run's domains and those left by lane runs that are gone."""
    listed = virsh("list", "--all", "--name")
    for name in listed.stdout.split():
        match = _LANE_DOMAIN.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not Path(f"/proc/{pid}").exists():
            remove_domain(name)


def _wait_for_verdict(name: str, serial_log: Path, timeout: float) -> str:
    """The serial log once it holds the verdict, or at the timeout or when the guest stopped."""
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        text = _read(serial_log)
        if _RESULT.search(text):
            return text
        polls += 1
        if polls % 8 == 0 and virsh("domstate", name).stdout.strip() == "shut off":
            return _read(serial_log)  # stopped without a verdict (a panic, a QEMU crash)
        time.sleep(0.25)
    return _read(serial_log)


def _wait_for_shutoff(name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if virsh("domstate", name).stdout.strip() == "shut off":
            return True
        time.sleep(0.25)
    return False


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _qemu_log(name: str) -> str:
    log = QEMU_LOG_DIR / f"{name}.log"
    return f"QEMU log {log}:\n{_tail(_read(log), 30)}"


# --- what libvirt kept of the Realm ------------------------------------------------------------


def _virtio(device: etree._Element) -> bool:
    """The devices the rewrite gives ``iommu='on'`` (disks, controllers, NICs, rng, ...)."""
    tag = device.tag
    model = device.find("model")
    target = device.find("target")
    if tag == "disk":
        return target is not None and target.get("bus") == "virtio"
    if tag == "controller":
        return device.get("type") == "virtio-serial" or (
            device.get("type") == "scsi" and device.get("model", "").startswith("virtio")
        )
    if tag == "interface":
        return model is not None and model.get("type", "").startswith("virtio")
    if tag in ("rng", "vsock"):
        return device.get("model", "").startswith("virtio")
    if tag == "input":
        return device.get("bus") == "virtio"
    if tag == "video":
        return model is not None and model.get("type") == "virtio"
    return tag == "filesystem"


def realm_problems(domain_xml: str) -> list[str]:
    """Where ``domain_xml`` lacks a Realm property the rewrite sets; empty when it has them all.

    Used on libvirt's own ``dumpxml`` to show libvirt kept every attribute the rewrite set.
    """
    root = etree.fromstring(domain_xml.encode())
    problems = []
    virtio_count = 0
    for device in root.iterfind("devices/*"):
        if _virtio(device):
            virtio_count += 1
            driver = device.find("driver")
            if driver is None or driver.get("iommu") != "on":
                problems.append(f"<{device.tag}> {_label(device)} has no iommu='on'")
        if device.tag == "interface":
            rom = device.find("rom")
            if rom is None or rom.get("enabled") != "no":
                problems.append(f"<interface> {_label(device)} keeps its option ROM")
        if device.tag == "memballoon" and device.get("model") != "none":
            problems.append(f"<memballoon model='{device.get('model')}'>")
    if root.find("devices/memballoon[@model='none']") is None:
        problems.append("no <memballoon model='none'/>")
    if virtio_count == 0:
        problems.append("no virtio device at all")
    if root.find("features/gic[@version='3']") is None:
        problems.append("no <gic version='3'/>")
    loader = root.find("os/loader")
    if loader is not None:
        if loader.get("type") != "rom" or loader.get("readonly") != "yes":
            problems.append(
                f"loader is type='{loader.get('type')}' "
                f"readonly='{loader.get('readonly')}', expected a read-only ROM"
            )
        if root.find("os/nvram") is not None:
            problems.append("an <nvram> is present")
    return problems


def _label(device: etree._Element) -> str:
    alias = device.find("alias")
    target = device.find("target")
    for element, attribute in ((alias, "name"), (target, "dev")):
        if element is not None and element.get(attribute):
            return str(element.get(attribute))
    return device.get("type") or device.get("model") or "?"
