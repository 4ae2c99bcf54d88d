"""The one builder of the cluster view: which KubeVirt CR, which gates, and doctor's agreement.

The webhook's cache, ``validate`` and ``doctor`` all call :func:`build_view`; these tables pin
what it decides, and the parity test runs doctor's checks and admission on the same inputs.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    ENABLE_ARM_CCA_FEATURE_GATE,
    ENABLE_CCA_FEATURE_GATE,
    ENABLED_LABEL,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission.gates import build_view
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.doctor import Expected, Read, Status, run_checks
from kubevirt_cca.core.install import InstallOptions
from tests.doctor.cluster import empty_snapshot

NAMESPACE = "kubevirt"


def cr(
    on: Any = None,
    off: Any = None,
    *,
    name: str = "kubevirt",
    namespace: str = NAMESPACE,
    created: str = "2026-01-01T00:00:00Z",
    deleting: bool = False,
) -> dict[str, Any]:
    developer: dict[str, Any] = {}
    if on is not None:
        developer["featureGates"] = on
    if off is not None:
        developer["disabledFeatureGates"] = off
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = "2026-06-01T00:00:00Z"
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": metadata,
        "spec": {"configuration": {"developerConfiguration": developer}},
        "status": {"phase": "Deployed", "observedKubeVirtVersion": "v1.8.0"},
    }


# (featureGates, disabledFeatureGates) -> the name that turned CCA on (None: off), or
# "unreadable" when the gates cannot be read at all (admission refuses, fail closed).
GATES: dict[str, tuple[Any, Any, str | None]] = {
    "RFC name": ([CCA_FEATURE_GATE, "Sidecar"], None, CCA_FEATURE_GATE),
    "VEP 129 tracking issue name": (
        [ENABLE_CCA_FEATURE_GATE, "Sidecar"],
        None,
        ENABLE_CCA_FEATURE_GATE,
    ),
    "VEP 338 name": ([ENABLE_ARM_CCA_FEATURE_GATE, "Sidecar"], None, ENABLE_ARM_CCA_FEATURE_GATE),
    "two names, first listed wins the report": (
        ["Sidecar", ENABLE_CCA_FEATURE_GATE, CCA_FEATURE_GATE],
        None,
        ENABLE_CCA_FEATURE_GATE,
    ),
    "disabled under its own name": (
        [ENABLE_CCA_FEATURE_GATE, "Sidecar"],
        [ENABLE_CCA_FEATURE_GATE],
        None,
    ),
    "disabled under another name": (
        [ENABLE_ARM_CCA_FEATURE_GATE, "Sidecar"],
        [CCA_FEATURE_GATE],
        None,
    ),
    "absent": (["Sidecar"], None, None),
    "a non-string in featureGates": ([CCA_FEATURE_GATE, "Sidecar", 7], None, "unreadable"),
    "a non-string in disabledFeatureGates": ([CCA_FEATURE_GATE, "Sidecar"], [None], "unreadable"),
    "featureGates not a list": ("WorkloadEncryptionCCA,Sidecar", None, "unreadable"),
}


@pytest.mark.parametrize("case", list(GATES))
def test_the_cca_gate_under_each_of_its_names(case: str) -> None:
    on, off, found = GATES[case]
    view = build_view(kubevirts=[cr(on, off)], kubevirt_namespace=NAMESPACE)
    if found == "unreadable":
        assert view.gates is None
        assert view.gates_problem is not None and "is not a list of strings" in view.gates_problem
        return
    assert view.gates is not None
    assert view.gates.cca_gate == found
    assert view.gates.is_enabled(CCA_FEATURE_GATE) is (found is not None)
    assert view.gates.is_enabled(SIDECAR_FEATURE_GATE)


def vmi() -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "realm", "namespace": "default", "labels": {ENABLED_LABEL: "true"}},
        "spec": {"domain": {"devices": {}}},
    }


def doctor_gates(kubevirts: list[dict[str, Any]]) -> Status:
    # Something of kubevirt-cca installed (else doctor's one check is "not installed").
    snapshot = empty_snapshot(kubevirts=Read(value=kubevirts), mutating=Read(value={}))
    checks = run_checks(snapshot, Expected(options=InstallOptions()))
    return next(c for c in checks if c.name == "feature gates").status


@pytest.mark.parametrize("case", list(GATES))
def test_doctor_fails_the_gates_exactly_when_admission_refuses(case: str) -> None:
    on, off, _ = GATES[case]
    kubevirts = [cr(on, off)]
    refused = bool(
        plan_vmi(vmi(), build_view(kubevirts=kubevirts, kubevirt_namespace=NAMESPACE)).violations
    )
    assert (doctor_gates(kubevirts) is Status.FAIL) is refused


ON = [CCA_FEATURE_GATE, "Sidecar"]
OFF = ["Sidecar"]
SELECTION: dict[str, tuple[list[dict[str, Any]], str | None, tuple[str, ...], bool]] = {
    # case: (CRs, the one in force, the ignored ones, whether CCA is then on)
    "one": ([cr(ON)], "kubevirt/kubevirt", (), True),
    "a decoy in another namespace turns the gates on": (
        [cr(OFF), cr(ON, name="decoy", namespace="elsewhere", created="2020-01-01T00:00:00Z")],
        "kubevirt/kubevirt",
        ("elsewhere/decoy",),
        False,
    ),
    "only in another namespace": (
        [cr(ON, namespace="openshift-cnv")],
        None,
        ("openshift-cnv/kubevirt",),
        False,
    ),
    "the oldest in the namespace": (
        [
            cr(OFF, name="young", created="2026-03-01T00:00:00Z"),
            cr(ON, name="old", created="2026-02-01T00:00:00Z"),
        ],
        "kubevirt/old",
        ("kubevirt/young",),
        True,
    ),
    "not one being deleted": (
        [
            cr(OFF, name="going", created="2025-01-01T00:00:00Z", deleting=True),
            cr(ON, name="staying"),
        ],
        "kubevirt/staying",
        ("kubevirt/going",),
        True,
    ),
}


@pytest.mark.parametrize("case", list(SELECTION))
def test_the_kubevirt_cr_in_force(case: str) -> None:
    crs, chosen, ignored, cca_on = SELECTION[case]
    view = build_view(kubevirts=crs, kubevirt_namespace=NAMESPACE)
    in_force = view.kubevirt
    shown = (
        None
        if in_force is None
        else f"{in_force['metadata']['namespace']}/{in_force['metadata']['name']}"
    )
    assert shown == chosen
    assert view.ignored_kubevirts == ignored
    if chosen is None:
        assert view.gates is None
        assert view.gates_problem == f"no KubeVirt CR found in namespace {NAMESPACE}"
    else:
        assert view.gates is not None
        assert view.gates.is_enabled(CCA_FEATURE_GATE) is cca_on


def test_unlisted_kubevirt_crs_leave_the_gates_unknown() -> None:
    view = build_view(
        kubevirts=None, kubevirts_problem="403 Forbidden: no", kubevirt_namespace=NAMESPACE
    )
    assert view.gates is None
    assert view.gates_problem == "the KubeVirt CR could not be read: 403 Forbidden: no"
