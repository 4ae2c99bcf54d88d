"""The parts of a domain the Realm rewrite touches, as comparable values (render vs converter).

docs/rewrite.md's rules act on: the loader / NVRAM / kernel boot (rules 3, 4), every device and
its model and bus (5, 6, 7), the features (8, 11), the CPU (9), and the memory a Realm is
created with. ``touched_parts`` reduces a domain to exactly those, so ``render``'s built-in
domain (core/domain/basedomain.py) and KubeVirt's converter output can be compared part by part.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lxml import etree

_UNITS = {
    "b": 1,
    "bytes": 1,
    "KiB": 2**10,
    "k": 2**10,
    "MiB": 2**20,
    "M": 2**20,
    "GiB": 2**30,
    "G": 2**30,
}


def _memory(root: etree._Element) -> int | None:
    element = root.find("memory")
    if element is None or element.text is None:
        return None
    return int(element.text) * _UNITS[element.get("unit", "KiB")]


def _device(device: etree._Element) -> str:
    tag = device.tag
    model = device.find("model")
    target = device.find("target")
    if tag == "disk":
        bus = target.get("bus") if target is not None else None
        return f"disk device={device.get('device')} bus={bus}"
    if tag == "interface":
        return f"interface model={model.get('type') if model is not None else None}"
    if tag == "controller":
        return f"controller type={device.get('type')} model={device.get('model')}"
    if tag == "video":
        return f"video model={model.get('type') if model is not None else None}"
    if tag == "input":
        return f"input type={device.get('type')} bus={device.get('bus')}"
    if tag in ("rng", "memballoon", "vsock"):
        return f"{tag} model={device.get('model')}"
    if tag == "channel":
        return f"channel target={target.get('name') if target is not None else None}"
    if tag in ("serial", "console", "graphics"):
        return f"{tag} type={device.get('type')}"
    return tag


def touched_parts(xml: str) -> dict[str, Any]:
    root = etree.fromstring(xml.encode())
    os_element = root.find("os")
    loader = root.find("os/loader")
    cpu = root.find("cpu")
    topology = root.find("cpu/topology")
    features = root.find("features")
    return {
        "memory": _memory(root),
        "loader": None
        if loader is None
        else (loader.get("type"), loader.get("readonly"), (loader.text or "").strip()),
        "nvram": root.find("os/nvram") is not None,
        "kernel boot": root.find("os/kernel") is not None,
        "os firmware": None if os_element is None else os_element.get("firmware"),
        "features": sorted(c.tag for c in features) if features is not None else [],
        "cpu mode": None if cpu is None else cpu.get("mode"),
        "cpu model": None if cpu is None or cpu.find("model") is None else cpu.find("model").text,  # type: ignore[union-attr]
        "topology": None if topology is None else dict(topology.attrib),
        "vcpus": root.findtext("vcpu"),
        "devices": dict(
            sorted(
                Counter(
                    _device(d)
                    for d in root.find("devices")  # type: ignore[union-attr]
                    if isinstance(d.tag, str)
                ).items()
            )
        ),
    }


def differences(render: dict[str, Any], kubevirt: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Part -> (render's, the converter's) where they differ; devices compared per kind."""
    found: dict[str, tuple[Any, Any]] = {}
    for key in render:
        if key == "devices":
            continue
        if render[key] != kubevirt[key]:
            found[key] = (render[key], kubevirt[key])
    for kind in sorted(set(render["devices"]) | set(kubevirt["devices"])):
        ours, theirs = render["devices"].get(kind, 0), kubevirt["devices"].get(kind, 0)
        if ours != theirs:
            found[kind] = (ours, theirs)
    return found
