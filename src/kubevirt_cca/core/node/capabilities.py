"""Can this host run Realms? libvirt's domain capabilities decide; host probes explain.

``parse_domcapabilities`` reads ``virsh domcapabilities`` XML (QEMU's ``rme-guest`` answer is
read in ``honoured.py`` and re-exported here). ``build_report`` joins it with what
the host probes saw into the detection report of docs/node-labels.md, the one JSON shape
that ``kubevirt-cca detect --output json`` prints and the labeller stores on the node.
The node labels follow from the report alone (``node_labels``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict

from lxml import etree

from kubevirt_cca.constants import (
    LABELLER_OWNED_LABELS,
    MEASUREMENT_ALGORITHMS,
    NODE_CCA_LABEL,
    VIRTCCA_MARKER,
)
from kubevirt_cca.core.node.honoured import Honoured as Honoured
from kubevirt_cca.core.node.honoured import RmeGuest as RmeGuest
from kubevirt_cca.core.node.honoured import parse_rme_guest_help as parse_rme_guest_help
from kubevirt_cca.core.node.layer_labels import LIBVIRT, RME_GUEST, LayerLabels
from kubevirt_cca.core.wire.libvirtxml import parse_document
from kubevirt_cca.errors import CapabilitiesError

# What enters the detection report (and so the Node annotation) is bounded: each reason and each
# text of evidence is cut at TEXT_LIMIT characters, and a report whose JSON still exceeds
# REPORT_LIMIT bytes keeps its verdict and reasons but drops the evidence (docs/node-labels.md).
TEXT_LIMIT = 512
REPORT_LIMIT = 16 * 1024
NOTES_LIMIT = 10


@dataclass(frozen=True)
class DomainCapabilities:
    """What libvirt says about CCA. ``cca_supported`` is ``None`` when libvirt says nothing.

    ``virtcca`` is set when the ``<cca>`` libvirt reports is openEuler's virtCCA (it names
    ``hisi-cca-enable``), a different technology that borrows the name.
    """

    arch: str | None
    cca_supported: bool | None
    measurement_algorithms: tuple[str, ...]
    personalization_value: bool = False
    measurement_log: bool = False
    virtcca: bool = False
    launch_security: bool | None = None
    """``<features><launchSecurity supported=...>``: ``None`` when libvirt has no such element
    (libvirt before 9.x, or a CCA patch series older than it)."""
    sectypes: tuple[str, ...] = ()
    """The values of its ``<enum name='sectype'>`` (``cca``, ``sev``, ``s390-pv``, ...)."""

    @property
    def sectype_cca(self) -> bool | None:
        """The second support signal: does ``<launchSecurity>`` list ``cca``? ``None``: silent."""
        if self.launch_security is None:
            return None
        return self.launch_security and CCA_SECTYPE in self.sectypes

    @property
    def contradiction(self) -> str | None:
        """Why libvirt's two CCA signals disagree, or ``None`` when they do not (fail closed:
        a disagreement makes the node not capable, whichever of the two says yes)."""
        sectype = self.sectype_cca
        if sectype is None or sectype == (self.cca_supported is True):
            return None
        listed = ", ".join(self.sectypes) or "none"
        if self.cca_supported is True:
            return (
                "libvirt's two answers disagree: <cca supported='yes'>, "
                f"but its <launchSecurity> types ({listed}) do not include cca; "
                "a node is labelled only when both say cca"
            )
        said = "no <cca> feature" if self.cca_supported is None else "cca supported='no'"
        return (
            "libvirt's two answers disagree: its <launchSecurity> types list cca, "
            f"but it reports {said}; a node is labelled only when <cca supported='yes'> says so too"
        )

    @property
    def honoured(self) -> Honoured:
        return Honoured(
            self.measurement_algorithms, self.personalization_value, self.measurement_log
        )


# The elements under <cca> that say libvirt passes a parameter on (docs/node-labels.md).
_LIBVIRT_PARAMETER_ELEMENTS = ("personalization-value", "measurement-log")
# The launchSecurity type libvirt's CCA patches add to <enum name='sectype'>.
CCA_SECTYPE = "cca"


def parse_domcapabilities(xml: str | bytes) -> DomainCapabilities:
    """Parse ``<domainCapabilities>`` XML; :class:`CapabilitiesError` when it is not that.

    Read under ``<features><cca supported='yes'>``: the ``<enum name='measurement-algo'>``
    values (one algorithm each), and ``<personalization-value supported='yes'/>`` /
    ``<measurement-log supported='yes'/>`` children or a ``measurement-log='yes'`` attribute
    (libvirt passes that parameter on; NVIDIA's RNG allows the attribute and a
    ``<personalization-value>`` child, its formatter emits neither). Anything else, or
    ``supported`` other than ``yes``, honours nothing. ``<features><launchSecurity>`` and its
    ``<enum name='sectype'>`` are read as the second support signal (:attr:`sectype_cca`).
    """
    root = parse_document(
        xml,
        root="domainCapabilities",
        name="domain capabilities",
        kind="libvirt domain capabilities (virsh domcapabilities)",
        error=CapabilitiesError,
    )
    arch = root.findtext("arch")
    arch = arch.strip() if arch else None
    cca = root.find("features/cca")
    features = root.find("features")
    virtcca = features is not None and _names_virtcca(features)
    launch_security, sectypes = _launch_security(root.find("features/launchSecurity"))
    if cca is None:
        return DomainCapabilities(
            arch=arch,
            cca_supported=None,
            measurement_algorithms=(),
            virtcca=virtcca,
            launch_security=launch_security,
            sectypes=sectypes,
        )
    supported = cca.get("supported") == "yes"
    algorithms: list[str] = []
    for enum in cca.findall("enum"):
        if enum.get("name") == "measurement-algo":
            for value in enum.findall("value"):
                text = (value.text or "").strip()
                if text and text not in algorithms:
                    algorithms.append(text)
    flags = {
        tag: any(child.get("supported") == "yes" for child in cca.findall(tag))
        for tag in _LIBVIRT_PARAMETER_ELEMENTS
    }
    log_attribute = cca.get("measurement-log") == "yes"
    return DomainCapabilities(
        arch=arch,
        cca_supported=supported,
        measurement_algorithms=tuple(algorithms) if supported else (),
        personalization_value=supported and flags["personalization-value"],
        measurement_log=supported and (flags["measurement-log"] or log_attribute),
        virtcca=virtcca,
        launch_security=launch_security,
        sectypes=sectypes,
    )


def _launch_security(element: etree._Element | None) -> tuple[bool | None, tuple[str, ...]]:
    """``<launchSecurity supported=...>`` and its sectype values (upstream libvirt's shape)."""
    if element is None:
        return None, ()
    values: list[str] = []
    for enum in element.findall("enum"):
        if enum.get("name") == "sectype":
            for value in enum.findall("value"):
                text = (value.text or "").strip()
                if text and text not in values:
                    values.append(text)
    return element.get("supported") == "yes", tuple(values)


def _names_virtcca(features: etree._Element) -> bool:
    """Whether ``<features>`` names virtCCA's marker: as an element, attribute or enum name."""
    for element in features.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == VIRTCCA_MARKER or VIRTCCA_MARKER in element.attrib:
            return True
        if element.get("name") == VIRTCCA_MARKER:
            return True
    return False


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


def node_labels(report: DetectionReport) -> dict[str, str]:
    """The labels a node carries for ``report`` (owned keys only; absent keys are removed)."""
    if not report.capable:
        return {}
    labels = {NODE_CCA_LABEL: "true"}
    labels.update(_honoured_labels(report.honoured, LIBVIRT))
    if report.rme_guest is not None:
        labels.update(_honoured_labels(report.rme_guest, RME_GUEST))
    return labels


def _honoured_labels(honoured: Honoured, layer: LayerLabels) -> dict[str, str]:
    keys = [layer.algorithm(algorithm) for algorithm in honoured.measurement_algorithms]
    if honoured.personalization_value:
        keys.append(layer.personalization_value)
    if honoured.measurement_log:
        keys.append(layer.measurement_log)
    # Only the fixed set the labeller's node policy allows (an algorithm Arm's RMM does not
    # know gets no label).
    return {key: "true" for key in keys if key in OWNED_LABELS}


# Every node label the labeller can write: one tuple, which its node policy also allows.
OWNED_LABELS: tuple[str, ...] = tuple(
    key
    for owned in LABELLER_OWNED_LABELS
    for key in ((owned + a for a in MEASUREMENT_ALGORITHMS) if owned.endswith("-") else (owned,))
)


def is_owned_label(key: str) -> bool:
    """Whether a node label key belongs to kubevirt-cca (the labeller touches no other key).

    It writes only :data:`OWNED_LABELS`; any key under one of its prefixes is its own to remove
    (one for an algorithm it no longer labels, written by an older version, is stale)."""
    return key in OWNED_LABELS or any(
        key.startswith(owned) for owned in LABELLER_OWNED_LABELS if owned.endswith("-")
    )
