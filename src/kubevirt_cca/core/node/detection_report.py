"""Can this host run Realms? libvirt's domain capabilities decide; host probes explain.

``build_report`` joins libvirt's answer (``domain_capabilities.py``), QEMU's ``rme-guest``
answer (``honoured.py``) and what the host probes saw into the detection report of
docs/node-labels.md, the one JSON shape that ``kubevirt-cca detect --output json`` prints and
the labeller stores on the node. The node labels follow from the report alone
(``labels.node_labels``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict

from kubevirt_cca.constants import VIRTCCA_MARKER
from kubevirt_cca.core.node.domain_capabilities import DomainCapabilities
from kubevirt_cca.core.node.honoured import Honoured, RmeGuest

# What enters the detection report (and so the Node annotation) is bounded: each reason and each
# text of evidence is cut at TEXT_LIMIT characters, and a report whose JSON still exceeds
# REPORT_LIMIT bytes keeps its verdict and reasons but drops the evidence (docs/node-labels.md).
TEXT_LIMIT = 512
REPORT_LIMIT = 16 * 1024
NOTES_LIMIT = 10


class DetectionReportJSON(TypedDict):
    """The wire form of a detection report (node annotation, ``detect --output json``)."""

    capable: bool
    measurementAlgorithms: list[str]
    effectiveMeasurementAlgorithm: str | None
    reasons: list[str]
    evidence: dict[str, Any]
    checkedAt: str


@dataclass(frozen=True)
class DetectionReport:
    """Whether a host can run Realms, which algorithms, and in plain words why not."""

    capable: bool
    measurement_algorithms: tuple[str, ...]
    """The algorithms a Realm can really ask libvirt for here (:func:`chosen_algorithms`);
    libvirt's own enum is in the evidence."""
    reasons: tuple[str, ...]
    evidence: Mapping[str, Any] = field(default_factory=dict)
    checked_at: datetime | None = None
    effective_measurement_algorithm: str | None = None
    """What a Realm that asks for no algorithm is measured with, where the stack says so."""
    personalization_value: bool = False
    """libvirt passes a personalization value on (with ``measurement_algorithms``:
    :attr:`honoured`, what the ``vep`` and ``openeuler`` dialects can rely on)."""
    measurement_log: bool = False
    rme_guest: Honoured | None = None
    """What the node's QEMU accepts on ``-object rme-guest`` (``qemu-commandline``); ``None``
    when QEMU was not asked."""

    @property
    def honoured(self) -> Honoured:
        return Honoured(
            self.measurement_algorithms, self.personalization_value, self.measurement_log
        )

    def to_json(self) -> DetectionReportJSON:
        checked = self.checked_at.isoformat().replace("+00:00", "Z") if self.checked_at else ""
        return {
            "capable": self.capable,
            "measurementAlgorithms": list(self.measurement_algorithms),
            "effectiveMeasurementAlgorithm": self.effective_measurement_algorithm,
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
    rme_guest: RmeGuest | None = None,
    rme_guest_error: str | None = None,
) -> DetectionReport:
    """Join libvirt's answer, QEMU's ``rme-guest`` answer and the host evidence into one report.

    libvirt decides: a host is capable exactly when its domain capabilities say
    ``<cca supported='yes'>`` (it is libvirt that will have to start the Realm) and that
    ``<cca>`` is not openEuler's virtCCA. The host evidence only explains a "no" in plain
    words; it never turns a "yes" into a "no" or back. QEMU's answer (when it was asked) only
    says which parameters the ``qemu-commandline`` dialect can pass on.
    """
    libvirt: dict[str, Any]
    if domcaps is None:
        libvirt = {"error": domcaps_error or "not read"}
    else:
        libvirt = {
            "arch": domcaps.arch,
            "ccaSupported": {True: "yes", False: "no", None: "absent"}[domcaps.cca_supported],
            "measurementAlgorithms": list(domcaps.measurement_algorithms),
            "personalizationValue": domcaps.personalization_value,
            "measurementLog": domcaps.measurement_log,
            "virtCCA": domcaps.virtcca,
            "launchSecurity": {True: "yes", False: "no", None: "absent"}[domcaps.launch_security],
            "sectypes": list(domcaps.sectypes),
        }
    evidence: dict[str, Any] = {"libvirt": libvirt, "host": host.to_json()}
    if rme_guest is not None:
        evidence["rmeGuest"] = {**rme_guest.to_json(), "answer": rme_guest.answer}
    elif rme_guest_error is not None:
        evidence["rmeGuest"] = {"error": rme_guest_error}
    evidence = _bounded(evidence)
    capable = (
        domcaps is not None
        and domcaps.cca_supported is True
        and not domcaps.virtcca
        and domcaps.contradiction is None
    )
    if capable and domcaps is not None:
        honoured_qemu = rme_guest.honoured if rme_guest is not None else None
        report = DetectionReport(
            True,
            chosen_algorithms(domcaps.measurement_algorithms, rme_guest),
            (),
            evidence,
            checked_at,
            effective_measurement_algorithm=_effective_algorithm(domcaps, rme_guest),
            personalization_value=domcaps.personalization_value,
            measurement_log=domcaps.measurement_log,
            rme_guest=honoured_qemu,
        )
    else:
        reasons = tuple(bound_text(r) for r in _reasons(domcaps, domcaps_error, host))
        report = DetectionReport(False, (), reasons, evidence, checked_at)
    if len(json.dumps(report.to_json(), separators=(",", ":")).encode()) > REPORT_LIMIT:
        omitted = {"omitted": f"the evidence made the report larger than {REPORT_LIMIT} bytes"}
        report = replace(report, evidence=omitted)
    return report


# The algorithm every stack we know measures with when a Realm cannot choose: NVIDIA's QEMU
# (sha512 fixed, whatever libvirt lists), Linaro's RFC v4 rme-guest (no property), and the
# default of the older rme-guest's measurement-algorithm property (docs/node-labels.md).
FIXED_MEASUREMENT_ALGORITHM = "sha512"


def chosen_algorithms(listed: tuple[str, ...], rme_guest: RmeGuest | None) -> tuple[str, ...]:
    """The algorithms of libvirt's enum (``listed``) a Realm really gets when it asks for one.

    The enum alone is not a capability: NVIDIA's QEMU makes libvirt list sha256 and sha512
    and measures with SHA-512 whatever is asked. A choice is real only for an algorithm the
    virt-launcher image's QEMU names on ``rme-guest``'s ``measurement-algorithm`` property;
    without that answer (QEMU not asked, no such property, no algorithm named) only the fixed
    sha512 is honoured, and only when libvirt accepts it (lists it).
    """
    qemu = rme_guest.honoured.measurement_algorithms if rme_guest is not None else ()
    real = set(qemu) if qemu else {FIXED_MEASUREMENT_ALGORITHM}
    return tuple(algorithm for algorithm in listed if algorithm in real)


def _effective_algorithm(domcaps: DomainCapabilities, rme_guest: RmeGuest | None) -> str | None:
    """What a Realm asking for no algorithm is measured with, when the stack tells (else None:
    no enum and no QEMU answer, e.g. the newest KVM host series, which picks its own)."""
    if FIXED_MEASUREMENT_ALGORITHM in domcaps.measurement_algorithms or (
        rme_guest is not None and rme_guest.known
    ):
        return FIXED_MEASUREMENT_ALGORITHM
    return None


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


def _reasons(
    domcaps: DomainCapabilities | None, domcaps_error: str | None, host: HostEvidence
) -> list[str]:
    reasons: list[str] = []
    arch = host.arch or (domcaps.arch if domcaps else None)
    if arch is not None and arch not in ("aarch64", "arm64"):
        reasons.append(f"the architecture is {arch}; Arm CCA needs an aarch64 host")
    if domcaps is None:
        reasons.append(
            f"libvirt's domain capabilities could not be read ({domcaps_error or 'unknown error'})"
        )
    elif domcaps.virtcca:
        reasons.append(
            f"libvirt's <cca> is openEuler's virtCCA (it names {VIRTCCA_MARKER}): "
            "HiSilicon's confidential VMs on TrustZone (S-EL2 and its TMM), not Arm CCA Realms "
            "(RME); kubevirt-cca cannot run Realms on it"
        )
    elif domcaps.cca_supported is False:
        reasons.append("libvirt reports cca supported='no'")
    elif domcaps.cca_supported is None:
        reasons.append("libvirt reports no <cca> feature: this libvirt build does not know Arm CCA")
    if domcaps is not None and not domcaps.virtcca and domcaps.contradiction is not None:
        reasons.append(domcaps.contradiction)
    if host.kvm_device is False:
        reasons.append("no /dev/kvm: KVM is not available on this host")
    if host.rmi_parameters and not any(_truthy(v) for v in host.rmi_parameters.values()):
        reasons.append("KVM exposes no RMI capability (the host kernel lacks CCA/RME support)")
    if host.kernel_log_read and host.rmi_abi_line is None:
        reasons.append(
            "the kernel log has no 'RMI ABI version' line: "
            "no Realm Management Monitor answered at boot (firmware without RMM, "
            "or a kernel without CCA host support)"
        )
    return reasons


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip() not in ("", "0", "N", "n")
