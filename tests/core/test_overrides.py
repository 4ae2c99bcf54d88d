"""The admin's per-node override of what a node's libvirt honours (issue 22 item 1).

NVIDIA's libvirt never advertises the personalization value or the measurement log through its
domain capabilities; the annotation ``cca.kubevirt.io/libvirt-honours`` lets the admin say so
per node. It may add those parameters to a capable node and nothing else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import pytest

from kubevirt_cca.constants import NODE_HONOURS_OVERRIDE_ANNOTATION
from kubevirt_cca.core.node.detection_report import DetectionReport, HostEvidence, build_report
from kubevirt_cca.core.node.domain_capabilities import parse_domcapabilities
from kubevirt_cca.core.node.honoured import parse_rme_guest_help
from kubevirt_cca.core.node.labelling import NodeMetadata, plan_node
from kubevirt_cca.core.node.labels import node_labels
from kubevirt_cca.core.node.overrides import apply_override, parse_override
from tests.conftest import DATA

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RPV_LABEL = "cca.kubevirt.io/personalization-value"
LOG_LABEL = "cca.kubevirt.io/measurement-log"


def report(domcaps: str, rme_guest: str | None = None) -> DetectionReport:
    return build_report(
        domcaps=parse_domcapabilities((DATA / "domcapabilities" / domcaps).read_text()),
        domcaps_error=None,
        host=HostEvidence(arch="aarch64"),
        checked_at=NOW,
        rme_guest=(
            parse_rme_guest_help((DATA / "rme-guest" / rme_guest).read_text())
            if rme_guest
            else None
        ),
    )


def labelled(detected: DetectionReport, annotations: dict[str, str]) -> dict[str, Any]:
    """A Node after the labeller's plan, applied by an independent RFC 6902 implementation."""
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "arm-1",
            "resourceVersion": "3",
            "labels": {"kubernetes.io/arch": "arm64"},
            "annotations": dict(annotations),
        },
    }
    plan = plan_node(NodeMetadata.from_object(node), detected)
    patched: dict[str, Any] = jsonpatch.apply_patch(node, [dict(op) for op in plan.patch])
    return patched


@pytest.mark.parametrize(
    ("value", "labels"),
    [
        ("personalizationValue,measurementLog", {RPV_LABEL, LOG_LABEL}),
        (" measurementLog ", {LOG_LABEL}),
        ("personalizationValue,personalizationValue", {RPV_LABEL}),
    ],
)
def test_the_override_adds_the_parameters_nvidias_domcaps_cannot_say(
    value: str, labels: set[str]
) -> None:
    node = labelled(report("aarch64-nvidia-cca.xml"), {NODE_HONOURS_OVERRIDE_ANNOTATION: value})
    got = node["metadata"]["labels"]
    assert {RPV_LABEL, LOG_LABEL} & set(got) == labels
    assert got["kubevirt.io/cca"] == "true"
    # The annotation is the admin's: the labeller's patch leaves it exactly as it was.
    assert node["metadata"]["annotations"][NODE_HONOURS_OVERRIDE_ANNOTATION] == value


def test_without_the_override_nvidias_node_honours_neither() -> None:
    node = labelled(report("aarch64-nvidia-cca.xml"), {})
    assert {RPV_LABEL, LOG_LABEL} & set(node["metadata"]["labels"]) == set()


@pytest.mark.parametrize(
    "domcaps",
    [
        "aarch64-nvidia-cca-no.xml",
        "aarch64-sectype-only.xml",
        "aarch64-cca-launchsecurity-no.xml",
        "aarch64-virtcca.xml",
    ],
)
def test_the_override_never_makes_a_node_capable(domcaps: str) -> None:
    value = "personalizationValue,measurementLog"
    detected = report(domcaps)
    overridden = apply_override(detected, value)
    assert not overridden.capable and node_labels(overridden) == {}
    assert overridden.evidence["adminOverride"]["applied"] == []
    node = labelled(detected, {NODE_HONOURS_OVERRIDE_ANNOTATION: value})
    assert set(node["metadata"]["labels"]) == {"kubernetes.io/arch"}


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("measurementAlgo", "'measurementAlgo'"),
        ("sha256", "'sha256'"),
        ("personalizationValue,kubevirt.io/cca", "'kubevirt.io/cca'"),
        ("", "an empty list"),
        (" , ", "an empty list"),
    ],
)
def test_a_bad_override_grants_nothing_and_says_why(value: str, got: str) -> None:
    with pytest.raises(ValueError, match="expected a comma-separated list") as refused:
        parse_override(value)
    message = str(refused.value)
    assert message == (
        f"annotation {NODE_HONOURS_OVERRIDE_ANNOTATION}: expected a comma-separated list of "
        f"personalizationValue, measurementLog, got {got}; nothing is overridden"
    )
    overridden = apply_override(report("aarch64-nvidia-cca.xml"), value)
    assert overridden.evidence["adminOverride"]["error"] == message
    assert node_labels(overridden) == node_labels(report("aarch64-nvidia-cca.xml"))


def test_the_override_adds_no_algorithm() -> None:
    overridden = apply_override(report("aarch64-nvidia-cca.xml"), "measurementLog")
    assert overridden.measurement_algorithms == ("sha512",)
    assert set(node_labels(overridden)) == {
        "kubevirt.io/cca",
        "cca.kubevirt.io/measurement-algo-sha512",
        LOG_LABEL,
    }


def test_the_override_yields_to_a_qemu_that_cannot_take_the_parameter() -> None:
    """Linaro's RFC v4 rme-guest takes no property: libvirt has nothing to pass them to."""
    overridden = apply_override(
        report("aarch64-nvidia-cca.xml", "rfc-v4.txt"), "personalizationValue,measurementLog"
    )
    assert {RPV_LABEL, LOG_LABEL} & set(node_labels(overridden)) == set()
    evidence = overridden.evidence["adminOverride"]
    assert evidence["applied"] == []
    assert evidence["note"].startswith(
        "not applied: personalizationValue, measurementLog: the virt-launcher image's QEMU "
        "rme-guest does not take it"
    )
    with_qemu = apply_override(
        report("aarch64-nvidia-cca.xml", "linaro-v3.txt"), "personalizationValue"
    )
    assert RPV_LABEL in node_labels(with_qemu)


def test_the_override_is_recorded_in_the_detection_annotation() -> None:
    value = "measurementLog"
    node = labelled(report("aarch64-nvidia-cca.xml"), {NODE_HONOURS_OVERRIDE_ANNOTATION: value})
    recorded = json.loads(node["metadata"]["annotations"]["cca.kubevirt.io/detection"])
    assert recorded["evidence"]["adminOverride"] == {
        "annotation": value,
        "applied": ["measurementLog"],
    }


def test_a_skipped_node_ignores_the_override_too() -> None:
    annotations = {
        NODE_HONOURS_OVERRIDE_ANNOTATION: "measurementLog",
        "node-labeller.kubevirt.io/skip-node": "true",
    }
    node = labelled(report("aarch64-nvidia-cca.xml"), annotations)
    assert set(node["metadata"]["labels"]) == {"kubernetes.io/arch"}
