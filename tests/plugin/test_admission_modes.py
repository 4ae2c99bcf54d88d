"""Admission under each integration mode: what the mutating and validating sides do to CCA VMIs
and virt-launcher pods, checked on the shared KubeVirt manifests, against KubeVirt's CRD schema,
and against the CEL backstop policies."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    HOOK_SIDECARS_ANNOTATION,
    INTEGRATION_ANNOTATION,
    PLUGIN_CONTAINER,
    PLUGIN_NAME,
    PLUGIN_SOCKET,
    PLUGINS_FEATURE_GATE,
    RESOLVED_ANNOTATION,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.admit import admit
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates
from kubevirt_cca.core.admission.launcher_pod import plan_launcher_pod
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.reviews import parse_review
from kubevirt_cca.core.admission.validate import validate_template, validate_vmi
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install import InstallOptions
from kubevirt_cca.core.vmi.webhook_table import Endpoint
from tests.admission.helpers import MANIFESTS, labelled, load, review, schema_errors
from tests.plugin.policy import POLICIES, PolicyFile
from tests.plugin.test_plugin_objects import K8S_VERSION, launcher_pod

QEMU = Settings(dialect=Dialect.QEMU_COMMANDLINE)
IMAGE = "registry.example/kubevirt-cca:1"


def view(
    gates: set[str],
    *,
    mode: IntegrationMode = IntegrationMode.AUTO,
    plugins: frozenset[str] | None = frozenset({PLUGIN_NAME}),
    settings: Settings = QEMU,
    **kwargs: Any,
) -> ClusterView:
    return ClusterView(
        gates=FeatureGates(frozenset(gates)),
        settings=settings,
        hook_image=IMAGE,
        integration_mode=mode,
        plugin_names=plugins,
        **kwargs,
    )


# Plugins on, Sidecar off (the cluster this path is for), auto mode.
PLUGIN = view({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE})
SIDECAR = view({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE}, plugins=frozenset())
VMIS = [p for p in MANIFESTS if load(p)["kind"] == "VirtualMachineInstance"]
TEMPLATES = [
    p
    for p in MANIFESTS
    if load(p)["kind"]
    in ("VirtualMachine", "VirtualMachineInstanceReplicaSet", "VirtualMachinePool")
]


def messages(violations: Any) -> list[str]:
    return [v.message for v in violations]


# --- VMIs in plugin mode -----------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("path", VMIS, ids=[p.stem for p in VMIS])
def test_plugin_mode_mutation_has_no_hook_entry(path: Path) -> None:
    vmi = labelled(load(path))
    plan = plan_vmi(vmi, PLUGIN)
    assert plan.violations == ()
    admitted = patches.apply(vmi, plan.patch)
    # also applied as the API server would apply the JSON patch
    assert jsonpatch.apply_patch(copy.deepcopy(vmi), plan.patch) == admitted
    annotations = admitted["metadata"]["annotations"]
    assert annotations[INTEGRATION_ANNOTATION] == "plugin"
    assert json.loads(annotations[RESOLVED_ANNOTATION])["dialect"] == "qemu-commandline"
    # the user's own sidecars (some shared manifests have one) are kept as they were
    assert annotations.get(HOOK_SIDECARS_ANNOTATION) == vmi["metadata"].get("annotations", {}).get(
        HOOK_SIDECARS_ANNOTATION
    )
    assert admitted["spec"]["nodeSelector"]["kubevirt.io/cca"] == "true"
    assert schema_errors(admitted) == []
    # the validating side admits exactly what mutation made, and the CEL backstop too
    assert validate_vmi(admitted, operation="CREATE", cluster=PLUGIN) == []
    assert PolicyFile(POLICIES / "cca-vmi-needs-hook.yaml").denials(admitted) == []


@pytest.mark.shared
def test_plugin_mode_backstops_refuse_a_vmi_that_skipped_mutation() -> None:
    if not VMIS:
        pytest.skip("../shared is absent (no shared VMI manifests to start from)")
    vmi = labelled(load(VMIS[0]))
    refused = messages(validate_vmi(vmi, operation="CREATE", cluster=PLUGIN))
    assert any(
        "must be 'plugin' (the Realm is set up by kubevirt-cca's KubeVirt Plugin)" in m
        for m in refused
    )
    assert not any(HOOK_SIDECARS_ANNOTATION in m for m in refused)
    assert len(PolicyFile(POLICIES / "cca-vmi-needs-hook.yaml").denials(vmi)) == 2


def test_plugin_mode_needs_no_sidecar_gate() -> None:
    vmi = labelled(
        {
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "r"},
            "spec": {"domain": {"devices": {}}},
        }
    )
    assert plan_vmi(vmi, PLUGIN).violations == ()
    assert not any("Sidecar" in m for m in messages(plan_vmi(vmi, SIDECAR).violations))
    no_sidecar = view({CCA_FEATURE_GATE}, mode=IntegrationMode.SIDECAR, plugins=frozenset())
    assert any(
        m.startswith("Sidecar feature gate is not enabled")
        for m in messages(plan_vmi(vmi, no_sidecar).violations)
    )


BARE = {
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "r", "namespace": "ns"},
    "spec": {"domain": {"devices": {}}},
}
REFUSALS: dict[str, tuple[ClusterView, str]] = {
    "plugin-mode-without-plugins-gate": (
        view({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE}, mode=IntegrationMode.PLUGIN),
        "integration mode plugin needs KubeVirt's Plugins feature gate",
    ),
    "plugin-mode-with-vep-dialect": (
        view({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE}, settings=Settings()),
        "integration mode plugin needs dialect qemu-commandline",
    ),
    "plugin-mode-without-our-plugin-object": (
        view({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE}, plugins=frozenset({"other"})),
        "needs kubevirt-cca's Plugin object (plugin.kubevirt.io/v1alpha1 Plugin kubevirt-cca)",
    ),
    "plugins-unlistable-in-plugin-mode": (
        view(
            {CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE},
            plugins=None,
            plugins_problem="the API server answered 403",
        ),
        "cannot list KubeVirt's Plugin objects (the API server answered 403)",
    ),
    "plugins-unlistable-in-sidecar-mode-with-plugins-gate": (
        view(
            {CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE},
            mode=IntegrationMode.SIDECAR,
            plugins=None,
            plugins_problem="timeout",
        ),
        "cannot list KubeVirt's Plugin objects (timeout)",
    ),
    "mixed-state-with-vep-dialect": (
        view(
            {CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE},
            mode=IntegrationMode.SIDECAR,
            plugins=frozenset({"someone-elses"}),
            settings=Settings(),
        ),
        "mixed state: KubeVirt's Plugins gate is on and Plugin objects exist (someone-elses)",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_mode_problems_refuse_cca_vmis_and_templates(case: str) -> None:
    cluster, phrase = REFUSALS[case]
    refused = messages(plan_vmi(labelled(BARE), cluster).violations)
    assert any(phrase in m for m in refused), refused
    assert all("see docs/plugins.md" in m for m in refused if phrase in m)
    template = labelled(
        {
            "kind": "VirtualMachine",
            "metadata": {"name": "vm"},
            "spec": {"template": {"spec": {"domain": {"devices": {}}}}},
        }
    )
    assert any(
        phrase in m
        for m in messages(validate_template(template, operation="CREATE", cluster=cluster))
    )
    # plain VMIs never wait on the mode
    assert plan_vmi(BARE, cluster).violations == ()


def test_plugins_unlistable_does_not_matter_without_the_gate() -> None:
    cluster = view(
        {CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE}, plugins=None, plugins_problem="timeout"
    )
    assert plan_vmi(labelled(BARE), cluster).violations == ()


@pytest.mark.parametrize("version", ["v1.9.2", "", None])
def test_mixed_state_before_kubevirt_1_10_is_refused(version: str | None) -> None:
    """Before 1.10 (or not knowing) the Plugins path drops the legacy hook's qemu:commandline:
    the VM would start as a plain VM, so it is refused (fail closed)."""
    cluster = view(
        {CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE},
        mode=IntegrationMode.SIDECAR,
        plugins=frozenset({"someone-elses"}),
        kubevirt_version=version,
    )
    verdict = admit(
        Endpoint.MUTATE_VMI, parse_review(json.dumps(review(labelled(BARE))).encode()), cluster
    )
    assert verdict.response["allowed"] is False
    assert "mixed state:" in verdict.response["status"]["message"]


def test_tolerated_mixed_state_admits_with_a_warning() -> None:
    cluster = view(
        {CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE},
        mode=IntegrationMode.SIDECAR,
        plugins=frozenset({"someone-elses"}),
        kubevirt_version="v1.10.0",
    )
    verdict = admit(
        Endpoint.MUTATE_VMI, parse_review(json.dumps(review(labelled(BARE))).encode()), cluster
    )
    assert verdict.response["allowed"] is True
    [warning] = verdict.response["warnings"]
    assert warning.startswith("mixed state:") and "KubeVirt 1.10 and newer" in warning
    plain = admit(Endpoint.MUTATE_VMI, parse_review(json.dumps(review(BARE)).encode()), cluster)
    assert "warnings" not in plain.response


def test_our_hook_entry_is_refused_in_plugin_mode() -> None:
    vmi = labelled(BARE)
    vmi["metadata"]["annotations"] = {
        HOOK_SIDECARS_ANNOTATION: json.dumps(
            [{"image": IMAGE, "args": ["hook", "--dialect", "qemu-commandline"]}]
        )
    }
    refused = messages(plan_vmi(vmi, PLUGIN).violations)
    assert any("runs kubevirt-cca as a KubeVirt Plugin" in m for m in refused)


@pytest.mark.parametrize(
    ("cluster", "value", "phrase"),
    [
        (SIDECAR, "plugin", "written by kubevirt-cca in plugin mode only"),
        (PLUGIN, "sidecar", "must be 'plugin' here"),
    ],
)
def test_a_forged_integration_annotation_is_refused(
    cluster: ClusterView, value: str, phrase: str
) -> None:
    vmi = labelled(BARE)
    vmi["metadata"]["annotations"] = {INTEGRATION_ANNOTATION: value}
    assert any(phrase in m for m in messages(plan_vmi(vmi, cluster).violations))


def test_the_integration_annotation_cannot_change_on_update() -> None:
    vmi = labelled(BARE)
    admitted = patches.apply(vmi, plan_vmi(vmi, PLUGIN).patch)
    changed = copy.deepcopy(admitted)
    del changed["metadata"]["annotations"][INTEGRATION_ANNOTATION]
    refused = validate_vmi(changed, operation="UPDATE", cluster=PLUGIN, old=admitted)
    assert [v.field for v in refused] == [f"metadata.annotations[{INTEGRATION_ANNOTATION}]"]
    # a VMI admitted in sidecar mode keeps running when the cluster moves to plugin mode
    old = patches.apply(vmi, plan_vmi(vmi, SIDECAR).patch)
    assert validate_vmi(copy.deepcopy(old), operation="UPDATE", cluster=PLUGIN, old=old) == []


# --- virt-launcher pods --------------------------------------------------------------------------


def test_pod_in_plugin_mode_gets_the_container() -> None:
    pod = launcher_pod()
    ops, refused = plan_launcher_pod(pod, PLUGIN)
    assert refused == []
    patched = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
    [ours] = [c for c in patched["spec"]["containers"] if c["name"] == PLUGIN_CONTAINER]
    assert ours["image"] == IMAGE
    assert ours["args"][:3] == ["hook", "--plugin-socket", PLUGIN_SOCKET]
    assert (
        PolicyFile(
            POLICIES / "cca-launcher-pod-needs-plugin.yaml", InstallOptions(image=IMAGE)
        ).denials(patched)
        == []
    )
    assert plan_launcher_pod(patched, PLUGIN) == ([], [])  # reinvocation adds nothing


def test_pod_in_sidecar_mode_is_left_alone() -> None:
    assert plan_launcher_pod(launcher_pod(), SIDECAR) == ([], [])
    assert plan_launcher_pod(launcher_pod(with_volume=False), SIDECAR) == ([], [])


def test_other_pods_are_never_touched_even_when_the_mode_is_unknown() -> None:
    unknown = ClusterView(gates=None, gates_problem="boom")
    assert plan_launcher_pod(launcher_pod(labelled=False), unknown) == ([], [])
    assert plan_launcher_pod(launcher_pod(labelled=False), PLUGIN) == ([], [])


POD_REFUSALS: dict[str, tuple[ClusterView, dict[str, Any], str]] = {
    "mode-unknown": (
        ClusterView(gates=None, gates_problem="the API server answered 403"),
        launcher_pod(),
        "the API server answered 403",
    ),
    "plugin-mode-problem": (
        view({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE}, plugins=frozenset()),
        launcher_pod(),
        "needs kubevirt-cca's Plugin object",
    ),
    "config-invalid": (
        view(
            {CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE},
            config_problem="integrationMode: unknown value 'x'",
        ),
        launcher_pod(),
        "integrationMode: unknown value 'x'",
    ),
    "no-socket-volume": (
        PLUGIN,
        launcher_pod(with_volume=False),
        "has no kubevirt-plugin-sockets volume",
    ),
}


@pytest.mark.parametrize("case", list(POD_REFUSALS))
def test_pod_refusals(case: str) -> None:
    cluster, pod, phrase = POD_REFUSALS[case]
    ops, refused = plan_launcher_pod(pod, cluster)
    assert ops == []
    assert refused and any(phrase in v.message for v in refused), refused


def test_pod_endpoint_answers_only_pods_and_creates() -> None:
    pod = launcher_pod()
    request = review(pod)
    request["request"]["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    verdict = admit(
        Endpoint.MUTATE_LAUNCHER_POD, parse_review(json.dumps(request).encode()), PLUGIN
    )
    assert verdict.response["allowed"] is True and verdict.patched == 1
    request["request"]["operation"] = "UPDATE"
    request["request"]["oldObject"] = pod
    verdict = admit(
        Endpoint.MUTATE_LAUNCHER_POD, parse_review(json.dumps(request).encode()), PLUGIN
    )
    assert verdict.response == {"uid": request["request"]["uid"], "allowed": True}
    vmi_review = review(labelled(BARE))
    verdict = admit(
        Endpoint.MUTATE_LAUNCHER_POD, parse_review(json.dumps(vmi_review).encode()), PLUGIN
    )
    assert verdict.response["allowed"] is False
    assert verdict.response["status"]["code"] == 400


# --- KubeVirt's version on the Plugins path ----------------------------------------------------


@pytest.mark.parametrize("version", [None, "v1.9.0", "v1.9.5-12-gabcdef", "v1.10.0", ""])
def test_plugin_mode_does_not_gate_on_the_version(version: str | None) -> None:
    """The Plugins path keeps a plugin's <qemu:commandline> from KubeVirt 1.9.0 on (issue 8's
    facts); only a legacy hook's survives the rebuild from 1.10 (the mixed-state warning)."""
    cluster = dataclasses.replace(PLUGIN, kubevirt_version=version)
    assert plan_vmi(labelled(BARE), cluster).violations == ()
    ops, pod_refused = plan_launcher_pod(launcher_pod(), cluster)
    assert ops and not pod_refused


def test_sidecar_mode_does_not_care_about_the_version() -> None:
    cluster = dataclasses.replace(SIDECAR, kubevirt_version="v1.5.0")
    assert plan_vmi(labelled(BARE), cluster).violations == ()
