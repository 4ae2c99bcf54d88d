"""The cluster admin's per-node override of what a node's libvirt honours.

NVIDIA's libvirt passes ``personalization-value`` and ``measurement-log`` from the domain XML
on, but its domain capabilities never say so (its formatter writes only the algorithm enum), so
detection alone can never label such a node for them. The admin, who knows the node's stack,
says so on the Node itself with the annotation ``cca.kubevirt.io/libvirt-honours`` (a
comma-separated list of VEP 129 parameter names, e.g. ``personalizationValue,measurementLog``).

The override only ever adds a parameter to a node libvirt already found capable: it never makes
a node capable, never adds an algorithm, and yields to the virt-launcher image's QEMU when that
QEMU was asked and its ``rme-guest`` does not take the parameter. A value that is not such a
list grants nothing, and the report's evidence says why (``evidence.adminOverride``). Only
someone who may annotate Nodes can set it: not a VM owner, and not the labeller (its node
policy allows it its own keys only; docs/security.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kubevirt_cca.constants import (
    MEASUREMENT_LOG_KEY,
    NODE_HONOURS_OVERRIDE_ANNOTATION,
    PERSONALIZATION_VALUE_KEY,
)
from kubevirt_cca.core.node.detection_report import DetectionReport, bound_text

OVERRIDABLE = (PERSONALIZATION_VALUE_KEY, MEASUREMENT_LOG_KEY)
EVIDENCE_KEY = "adminOverride"


def parse_override(value: str) -> tuple[str, ...]:
    """The parameter names in the annotation's value; :class:`ValueError` naming what is wrong."""
    names = [part.strip() for part in value.split(",")]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in OVERRIDABLE]
    if unknown or not names:
        got = ", ".join(repr(name) for name in unknown) if unknown else "an empty list"
        raise ValueError(
            f"annotation {NODE_HONOURS_OVERRIDE_ANNOTATION}: "
            f"expected a comma-separated list of {', '.join(OVERRIDABLE)}, got {got}; "
            "nothing is overridden"
        )
    return tuple(dict.fromkeys(names))


def apply_override(report: DetectionReport, value: str | None) -> DetectionReport:
    """``report`` with what the admin's annotation ``value`` grants (unchanged without one)."""
    if value is None:
        return report
    evidence: dict[str, Any] = {"annotation": bound_text(value)}
    try:
        names = parse_override(value)
    except ValueError as exc:
        evidence["error"] = bound_text(str(exc))
        return _with_evidence(report, evidence)
    if not report.capable:
        evidence["applied"] = []
        evidence["note"] = (
            "not applied: the node is not capable (the override adds parameters only)"
        )
        return _with_evidence(report, evidence)
    qemu = report.rme_guest
    refused = [
        name
        for name in names
        if qemu is not None
        and not (
            qemu.personalization_value
            if name == PERSONALIZATION_VALUE_KEY
            else qemu.measurement_log
        )
    ]
    applied = [name for name in names if name not in refused]
    evidence["applied"] = applied
    if refused:
        evidence["note"] = (
            f"not applied: {', '.join(refused)}: "
            "the virt-launcher image's QEMU rme-guest does not take it, "
            "so libvirt cannot pass it on"
        )
    overridden = replace(
        report,
        personalization_value=report.personalization_value or PERSONALIZATION_VALUE_KEY in applied,
        measurement_log=report.measurement_log or MEASUREMENT_LOG_KEY in applied,
    )
    return _with_evidence(overridden, evidence)


def _with_evidence(report: DetectionReport, evidence: dict[str, Any]) -> DetectionReport:
    return replace(report, evidence={**report.evidence, EVIDENCE_KEY: evidence})
