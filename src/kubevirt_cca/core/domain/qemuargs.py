"""Foreign QEMU arguments: what of libvirt's QEMU namespace a Realm's domain may carry.

libvirt appends the values of ``<qemu:commandline><qemu:arg value=...>`` to the QEMU command
line it builds, and an earlier hook sidecar (or whoever wrote the incoming domain) can put
anything there. QEMU's option parsing leaves many ways to undo a Realm from there, each checked
with a real ``qemu-system-aarch64`` (``tests/boot/test_qemu_arguments.py``): every ``-machine``
(also ``-M``, ``--machine``, ``type=virt,...``) is merged into one and the last value of each
property wins, ``confidential-guest-support`` and ``accel`` among them; ``-readconfig`` reaches
the same properties from a file; the last ``-cpu`` wins; ``-global`` changes the default of
``iommu_platform`` for every virtio device of a type; ``-set`` overrides an explicit device
property; a bare word is a disk image; and an option takes the next argument as its value
whatever it looks like. Telling harmful from harmless by pattern would need QEMU's whole
option table, so this is an allow-list:

* our own pair from an earlier define, ``-object rme-guest,id=rme0,...`` and ``-machine
  confidential-guest-support=rme0``, is recognised so the rewrite can replace it;
* ``-fw_cfg`` (or ``--fw_cfg``) with ``[name=]opt/...`` and one of ``file=`` or ``string=``,
  what KubeVirt itself writes (Ignition): it only adds a data item the firmware may read;
* ``-msg`` with ``timestamp`` and ``guest-name`` set to ``on`` or ``off``: the format of QEMU's
  own error messages (libvirt writes ``-msg timestamp=on`` itself);
* everything else is refused, naming the argument and what it can change: the hook then fails
  the call and the VM does not start. So are ``<qemu:env>`` (``LD_PRELOAD`` and ``QEMU_*``
  change QEMU itself), ``<qemu:override>`` (device properties such as ``iommu_platform``),
  ``<qemu:capabilities>`` (how libvirt builds the command line) and every other element of the
  namespace. The reasons are in ``docs/rewrite.md`` ("Foreign QEMU arguments").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE, RME_GUEST_OBJECT
from kubevirt_cca.errors import DomainError

QEMU = "{%s}" % QEMU_NAMESPACE  # noqa: UP031 - Clark notation for lxml
RME_OBJECT_ID = "rme0"
CGS_VALUE = f"confidential-guest-support={RME_OBJECT_ID}"
_FW_CFG_NAME_PREFIX = "opt/"
_SHOWN = 120  # characters of one argument shown in a message
_LISTED = 8  # refused arguments listed in one message

# What each option that can harm a Realm changes, and whether it takes a value (QEMU's
# HAS_ARG): the value is shown with it, and the walk goes on after it. An option not listed
# here is refused too; the walk stops there (its arity is unknown).
_MACHINE = (
    "sets the machine and its properties, "
    "among them confidential-guest-support and the accelerator; "
    "QEMU merges every -machine and takes the last value of each property"
)
_ACCELERATOR = "chooses the accelerator (a Realm needs KVM)"
_CPU = "chooses the CPU model (QEMU takes the last -cpu; a Realm needs host-passthrough)"
_FIRMWARE = "changes the firmware or what is loaded into guest memory"
_DEVICES = "adds or changes devices and their properties, such as virtio iommu_platform"
_OBJECTS = "creates QEMU objects, such as another confidential-guest-support object"
_CONFIG = "reads options from a file, which may set any of the above"
_OPTIONS: dict[str, tuple[bool, str]] = {
    "machine": (True, _MACHINE),
    "M": (True, _MACHINE),
    "accel": (True, _ACCELERATOR),
    "enable-kvm": (False, _ACCELERATOR),
    "cpu": (True, _CPU),
    "bios": (True, _FIRMWARE),
    "pflash": (True, _FIRMWARE),
    "drive": (True, _FIRMWARE + " (if=pflash is firmware)"),
    "L": (True, _FIRMWARE),
    "kernel": (True, _FIRMWARE),
    "initrd": (True, _FIRMWARE),
    "dtb": (True, _FIRMWARE),
    "append": (True, _FIRMWARE),
    "global": (True, _DEVICES),
    "set": (True, _DEVICES),
    "device": (True, _DEVICES),
    "object": (True, _OBJECTS),
    "readconfig": (True, _CONFIG),
    "fw_cfg": (True, "is allowed only as [name=]opt/...,file=... or [name=]opt/...,string=..."),
    "msg": (True, "is allowed only with timestamp= and guest-name= set to on or off"),
}
_UNKNOWN = "is not on kubevirt-cca's list of arguments shown to be harmless to a Realm"
_POSITIONAL = "is not an option: QEMU reads a bare word as a disk image (-hda)"
_MISSING_VALUE = "has no value after it"


def parse_opts(value: str, *, implied: str | None = None) -> list[tuple[str, str]]:
    """``key=value,...`` split the way QEMU's QemuOpts parser splits it.

    ``,,`` is a literal comma in a value; a first item without ``=`` is the value of the
    ``implied`` key (``virt`` for ``type``, ``rme-guest`` for ``qom-type``); any other item
    without ``=`` is a flag, ``key`` meaning ``on`` and ``nokey`` ``off``.
    """
    items: list[tuple[str, str]] = []
    position, end = 0, len(value)
    while position < end:
        name_end = position
        while name_end < end and value[name_end] not in "=,":
            name_end += 1
        if name_end < end and value[name_end] == "=":
            key = value[position:name_end]
            text, position = _opt_value(value, name_end + 1)
            items.append((key, text))
        elif not items and implied is not None:
            text, position = _opt_value(value, position)
            items.append((implied, text))
        else:
            flag = value[position:name_end]
            items.append((flag[2:], "off") if flag.startswith("no") else (flag, "on"))
            position = name_end
        position += 1  # the comma that ended the item
    return items


def _opt_value(value: str, position: int) -> tuple[str, int]:
    """The value starting at ``position`` (``,,`` read as ``,``) and where it ends."""
    parts: list[str] = []
    end = len(value)
    while position < end:
        char = value[position]
        if char == ",":
            if value[position + 1 : position + 2] != ",":
                break
            position += 1
        parts.append(char)
        position += 1
    return "".join(parts), position


def is_own_pair(flag: str, value: str) -> bool:
    """Whether ``flag value`` is one of the two arguments the ``qemu-commandline`` dialect writes.

    Recognised by meaning, not text: a ``-object`` of type ``rme-guest`` with id ``rme0``
    (whatever its other properties: the rewrite replaces it with the VMI's), and exactly
    ``-machine confidential-guest-support=rme0``.
    """
    if flag == "-object":
        items = parse_opts(value, implied="qom-type")
        return (
            bool(items)
            and items[0] == ("qom-type", RME_GUEST_OBJECT)
            and (dict(items).get("id") == RME_OBJECT_ID)
        )
    return flag == "-machine" and value == CGS_VALUE


def harmless_fw_cfg(value: str) -> bool:
    """``[name=]opt/...`` with exactly one of ``file=`` and ``string=``, nothing else.

    A fw_cfg item is data the firmware may read; QEMU wants names of items from outside under
    ``opt/`` (the others are its own), and ``gen_id`` or any other key is refused.
    """
    items = parse_opts(value, implied="name")
    keys = [key for key, _ in items]
    fields = dict(items)
    return (
        len(keys) == len(set(keys))
        and set(keys) in ({"name", "file"}, {"name", "string"})
        and fields["name"].startswith(_FW_CFG_NAME_PREFIX)
    )


def harmless_msg(value: str) -> bool:
    """``timestamp`` and ``guest-name``, each at most once, ``on`` or ``off``: message format."""
    items = parse_opts(value)
    keys = [key for key, _ in items]
    return (
        bool(items)
        and len(keys) == len(set(keys))
        and set(keys) <= {"timestamp", "guest-name"}
        and all(text in ("on", "off") for _, text in items)
    )


_ALLOWED: dict[str, Callable[[str], bool]] = {"fw_cfg": harmless_fw_cfg, "msg": harmless_msg}


@dataclass(frozen=True)
class Refused:
    """One foreign argument (with its value, when it takes one) and what it can change."""

    shown: str
    reason: str

    def __str__(self) -> str:
        shown = self.shown if len(self.shown) <= _SHOWN else self.shown[: _SHOWN - 3] + "..."
        return f"{shown!r} {self.reason}"


def walk_arguments(values: Sequence[str]) -> tuple[list[int], list[Refused]]:
    """The positions of our own arguments in ``values``, and every refused foreign argument.

    ``values`` are the ``qemu:arg`` values in document order. The walk reads
    them as QEMU does, each option with its value; it stops at an argument whose arity it does
    not know, after refusing it, since it can no longer tell options from values.
    """
    own: list[int] = []
    refused: list[Refused] = []
    position = 0
    while position < len(values):
        flag = values[position]
        value = values[position + 1] if position + 1 < len(values) else None
        if value is not None and is_own_pair(flag, value):
            own.extend((position, position + 1))
            position += 2
            continue
        name = flag[2:] if flag.startswith("--") else flag[1:] if flag.startswith("-") else None
        if name is None or name == "":
            refused.append(Refused(flag, _POSITIONAL))
            position += 1
            continue
        known = _OPTIONS.get(name)
        if known is None:
            refused.append(Refused(flag, _UNKNOWN))
            break
        takes_value, reason = known
        if not takes_value:
            refused.append(Refused(flag, reason))
            position += 1
            continue
        if value is None:
            refused.append(Refused(flag, _MISSING_VALUE))
            break
        allowed = _ALLOWED.get(name)
        if allowed is None or not allowed(value):
            refused.append(Refused(f"{flag} {value}", reason))
        position += 2
    return own, refused


def commandline_blocks(root: etree._Element) -> list[etree._Element]:
    """The domain's ``<qemu:commandline>`` elements (libvirt reads those under ``<domain>``)."""
    return root.findall(f"{QEMU}commandline")


def own_arguments(root: etree._Element) -> list[etree._Element]:
    """Our own ``qemu:arg`` elements in the domain; :class:`DomainError` for anything foreign.

    Every ``qemu:arg`` of every ``<qemu:commandline>`` is read as one command line, in
    document order, so neither an option nor its value can hide in a second
    block. Any other element of the QEMU namespace, anywhere, is refused.
    """
    misplaced: list[etree._Element] = []
    for element in root.iter(f"{QEMU}*"):
        if not _expected_place(root, element) and not any(
            ancestor in misplaced for ancestor in element.iterancestors()
        ):
            misplaced.append(element)
    problems = [
        f"<{_qname(element)}> {_ELEMENT_REASONS.get(etree.QName(element).localname, _UNKNOWN)}"
        for element in misplaced
    ]
    args = [arg for block in commandline_blocks(root) for arg in block.iterchildren(f"{QEMU}arg")]
    values = [arg.get("value") for arg in args]
    if any(value is None for value in values):
        problems.append(f"<{_qname(args[values.index(None)])}> has no value attribute")
    own, refused = walk_arguments([value or "" for value in values])
    problems.extend(f"the QEMU argument {item}" for item in refused)
    if problems:
        listed = "; ".join(problems[:_LISTED])
        more = f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
        raise DomainError(
            "the domain carries what kubevirt-cca does not pass to a Realm in libvirt's QEMU "
            f"namespace: {listed}{more}. "
            "A Realm gets no foreign QEMU argument but -fw_cfg name=opt/... "
            "(file= or string=) and -msg; remove the rest from the VMI's other hook sidecars "
            "(see docs/rewrite.md#foreign-qemu-arguments)"
        )
    return [args[position] for position in own]


_ELEMENT_REASONS = {
    "env": "sets QEMU's environment (LD_PRELOAD, QEMU_* variables), which changes QEMU itself",
    "override": "overrides device properties, such as virtio iommu_platform",
    "capabilities": "changes the QEMU capabilities libvirt builds the command line from",
    "commandline": "is not where libvirt reads it (directly under <domain>)",
    "arg": "is not where libvirt reads it (in a <qemu:commandline> directly under <domain>)",
}


def _expected_place(root: etree._Element, element: etree._Element) -> bool:
    """A ``qemu:commandline`` directly under ``<domain>``, or a ``qemu:arg`` directly in one."""
    parent = element.getparent()
    if element.tag == f"{QEMU}commandline":
        return parent is root
    return (
        element.tag == f"{QEMU}arg"
        and parent is not None
        and parent.tag == f"{QEMU}commandline"
        and parent.getparent() is root
    )


def _qname(element: etree._Element) -> str:
    return f"qemu:{etree.QName(element).localname}"
