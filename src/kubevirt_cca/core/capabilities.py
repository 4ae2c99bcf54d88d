"""Can this host run Realms? libvirt's domain capabilities decide; host probes explain.

``parse_domcapabilities`` reads ``virsh domcapabilities`` XML. ``build_report`` joins it with what
the host probes saw into the detection report of DESIGN.md ("Node labels"), the one JSON shape
that ``kubevirt-cca detect --output json`` prints and the labeller stores on the node.
The node labels follow from the report alone (``node_labels``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from kubevirt_cca.constants import NODE_ALGO_LABEL_PREFIX, NODE_CCA_LABEL
from kubevirt_cca.core.libvirtxml import parse_document
from kubevirt_cca.errors import CapabilitiesError

# What enters the detection report (and so the Node annotation) is bounded: each reason and each
# text of evidence is cut at TEXT_LIMIT characters, and a report whose JSON still exceeds
# REPORT_LIMIT bytes keeps its verdict and reasons but drops the evidence (docs/node-labels.md).
TEXT_LIMIT = 512
REPORT_LIMIT = 16 * 1024
NOTES_LIMIT = 10

# A label value / name segment: what Kubernetes allows after the prefix of a label key.
_LABEL_NAME = re.compile(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")


@dataclass(frozen=True)
class DomainCapabilities:
    """What libvirt says about CCA. ``cca_supported`` is ``None`` when libvirt says nothing."""

    arch: str | None
    cca_supported: bool | None
    measurement_algorithms: tuple[str, ...]


def parse_domcapabilities(xml: str | bytes) -> DomainCapabilities:
    """Parse ``<domainCapabilities>`` XML; :class:`CapabilitiesError` when it is not that."""
    root = parse_document(xml, root="domainCapabilities", name="domain capabilities",
                          kind="libvirt domain capabilities (virsh domcapabilities)",
                          error=CapabilitiesError)
    arch = root.findtext("arch")
    cca = root.find("features/cca")
    if cca is None:
        return DomainCapabilities(arch=arch, cca_supported=None, measurement_algorithms=())
    supported = cca.get("supported") == "yes"
    algorithms: list[str] = []
    for enum in cca.findall("enum"):
        if enum.get("name") == "measurement-algo":
            for value in enum.findall("value"):
                text = (value.text or "").strip()
                if text and text not in algorithms:
                    algorithms.append(text)
    return DomainCapabilities(
        arch=arch.strip() if arch else None,
        cca_supported=supported,
        measurement_algorithms=tuple(algorithms) if supported else (),
    )


class DetectionReportJSON(TypedDict):
    """The wire form of a detection report (node annotation, ``detect --output json``)."""

    capable: bool
    measurementAlgorithms: list[str]
    reasons: list[str]
    evidence: dict[str, Any]
    checkedAt: str


@dataclass(frozen=True)
class DetectionReport:
    """Whether a host can run Realms, which algorithms, and in plain words why not."""

    capable: bool
    measurement_algorithms: tuple[str, ...]
    reasons: tuple[str, ...]
    evidence: Mapping[str, Any] = field(default_factory=dict)
    checked_at: datetime | None = None

    def to_json(self) -> DetectionReportJSON:
        checked = self.checked_at.isoformat().replace("+00:00", "Z") if self.checked_at else ""
        return {
            "capable": self.capable,
            "measurementAlgorithms": list(self.measurement_algorithms),
            "reasons": list(self.reasons),
            "evidence": dict(self.evidence),
            "checkedAt": checked,
        }


@dataclass(frozen=True)
class HostEvidence:
    """What the host probes saw (each probe reports, none raises). ``None``: not looked at."""

    arch: str | None = None
    kvm_device: bool | None = None
    rmi_parameters: Mapping[str, str | None] = field(default_factory=dict)
    rmi_abi_line: str | None = None
    kernel_log_read: bool = False
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.arch,
            "devKvm": self.kvm_device,
            "kvmRmiParameters": dict(self.rmi_parameters),
            "kernelRmiAbiLine": self.rmi_abi_line,
            "kernelLogRead": self.kernel_log_read,
            "notes": list(self.notes),
        }


def build_report(
    *,
    domcaps: DomainCapabilities | None,
    domcaps_error: str | None,
    host: HostEvidence,
    checked_at: datetime,
) -> DetectionReport:
    """Join libvirt's answer and the host evidence into one report.

    libvirt decides: a host is capable exactly when its domain capabilities say
    ``<cca supported='yes'>`` (it is libvirt that will have to start the Realm). The host
    evidence only explains a "no" in plain words; it never turns a "yes" into a "no" or back.
    """
    libvirt: dict[str, Any]
    if domcaps is None:
        libvirt = {"error": domcaps_error or "not read"}
    else:
        libvirt = {
            "arch": domcaps.arch,
            "ccaSupported": {True: "yes", False: "no", None: "absent"}[domcaps.cca_supported],
            "measurementAlgorithms": list(domcaps.measurement_algorithms),
        }
    evidence = _bounded({"libvirt": libvirt, "host": host.to_json()})
    capable = domcaps is not None and domcaps.cca_supported is True
    if capable and domcaps is not None:
        report = DetectionReport(True, domcaps.measurement_algorithms, (), evidence, checked_at)
    else:
        reasons = tuple(bound_text(r) for r in _reasons(domcaps, domcaps_error, host))
        report = DetectionReport(False, (), reasons, evidence, checked_at)
    if len(json.dumps(report.to_json(), separators=(",", ":")).encode()) > REPORT_LIMIT:
        omitted = {"omitted": f"the evidence made the report larger than {REPORT_LIMIT} bytes"}
        report = DetectionReport(report.capable, report.measurement_algorithms, report.reasons,
                                 omitted, checked_at)
    return report


def bound_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut at ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _bounded(value: Any) -> Any:
    """``value`` with every string cut by :func:`bound_text` and every list at NOTES_LIMIT."""
    if isinstance(value, str):
        return bound_text(value)
    if isinstance(value, dict):
        return {bound_text(str(k), 128): _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_bounded(v) for v in value[:NOTES_LIMIT]]
        if len(value) > NOTES_LIMIT:
            items.append(f"… {len(value) - NOTES_LIMIT} more")
        return items
    return value


def _reasons(domcaps: DomainCapabilities | None, domcaps_error: str | None,
             host: HostEvidence) -> list[str]:
    reasons: list[str] = []
    arch = host.arch or (domcaps.arch if domcaps else None)
    if arch is not None and arch not in ("aarch64", "arm64"):
        reasons.append(f"the architecture is {arch}; Arm CCA needs an aarch64 host")
    if domcaps is None:
        reasons.append(
            f"libvirt's domain capabilities could not be read ({domcaps_error or 'unknown error'})"
        )
    elif domcaps.cca_supported is False:
        reasons.append("libvirt reports cca supported='no'")
    else:
        reasons.append(
            "libvirt reports no <cca> feature: this libvirt build does not know Arm CCA"
        )
    if host.kvm_device is False:
        reasons.append("no /dev/kvm: KVM is not available on this host")
    if host.rmi_parameters and not any(
        _truthy(v) for v in host.rmi_parameters.values()
    ):
        reasons.append("KVM exposes no RMI capability (the host kernel lacks CCA/RME support)")
    if host.kernel_log_read and host.rmi_abi_line is None:
        reasons.append(
            "the kernel log has no 'RMI ABI version' line: no Realm Management Monitor answered "
            "at boot (firmware without RMM, or a kernel without CCA host support)"
        )
    return reasons


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip() not in ("", "0", "N", "n")


def node_labels(report: DetectionReport) -> dict[str, str]:
    """The labels a node carries for ``report`` (owned keys only; absent keys are removed)."""
    if not report.capable:
        return {}
    labels = {NODE_CCA_LABEL: "true"}
    for algorithm in report.measurement_algorithms:
        if _LABEL_NAME.match(NODE_ALGO_LABEL_PREFIX.split("/", 1)[1] + algorithm):
            labels[NODE_ALGO_LABEL_PREFIX + algorithm] = "true"
    return labels


def is_owned_label(key: str) -> bool:
    """Whether a node label key belongs to kubevirt-cca (the labeller touches no other key)."""
    return key == NODE_CCA_LABEL or key.startswith(NODE_ALGO_LABEL_PREFIX)
