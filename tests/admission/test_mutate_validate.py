"""Mutation and validation on real KubeVirt manifests, with and without the CCA label."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import (
    DEFAULT_HOOK_IMAGE,
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    LAUNCH_SECURITY_ANNOTATION,
    RESOLVED_ANNOTATION,
)
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.gates import (
    ClusterView,
    FeatureGates,
    all_gates_on,
    config_from_map,
    gates_from_kubevirt,
    pick_kubevirt,
)
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.sidecar_entry import hook_entry
from kubevirt_cca.core.admission.validate import (
    MIGRATION_REFUSAL,
    judge_migration,
    validate_template,
    validate_vmi,
)
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.errors import SettingsError
from tests.admission.helpers import (
    MANIFESTS,
    labelled,
    load,
    require_manifests,
    schema_errors,
    template_node,
)

pytestmark = pytest.mark.shared
require_manifests()

ON = ClusterView(gates=all_gates_on())
VMIS = [p for p in MANIFESTS if load(p)["kind"] == "VirtualMachineInstance"]
# KubeVirt's own examples that run a hook sidecar of theirs: a CCA VMI may not (issue 21).
OWN_SIDECARS = [
    p for p in VMIS if HOOK_SIDECARS_ANNOTATION in load(p)["metadata"].get("annotations", {})
]
TEMPLATES = [
    p
    for p in MANIFESTS
    if load(p)["kind"]
    in ("VirtualMachine", "VirtualMachineInstanceReplicaSet", "VirtualMachinePool")
]
PARAMS = json.dumps(
    {
        "measurementAlgo": "sha512",
        "measurementLog": "yes",
        "personalizationValue": "QUJD" * 21 + "QQ==",
    }
)


def admitted(obj: dict[str, Any], cluster: ClusterView = ON) -> dict[str, Any]:
    plan = plan_vmi(obj, cluster)
    assert plan.violations == ()
    result: dict[str, Any] = jsonpatch.apply_patch(obj, plan.patch)
    return result


def fields(violations: Any) -> list[str]:
    return [v.field for v in violations]


REALM_VMIS = [p for p in VMIS if p not in OWN_SIDECARS]


@pytest.mark.parametrize("path", REALM_VMIS, ids=[p.stem for p in REALM_VMIS])
@pytest.mark.parametrize("annotation", [None, PARAMS])
def test_labelled_vmi_is_mutated_into_a_schema_valid_realm(
    path: Any, annotation: str | None
) -> None:
    original = labelled(load(path), annotation)
    result = admitted(original)
    assert schema_errors(result) == []
    spec = result["spec"]
    assert spec["nodeSelector"]["kubevirt.io/cca"] == "true"
    assert spec["architecture"] == "arm64"
    assert spec["evictionStrategy"] == "None"
    assert spec["domain"]["devices"]["autoattachMemBalloon"] is False
    annotations = result["metadata"]["annotations"]
    sidecars = json.loads(annotations[HOOK_SIDECARS_ANNOTATION])
    assert sidecars == [hook_entry(Settings(), DEFAULT_HOOK_IMAGE)]
    resolved = json.loads(annotations[RESOLVED_ANNOTATION])
    assert resolved["dialect"] == "vep" and resolved["virtioIOMMU"] == "on"
    if annotation is not None:
        assert spec["nodeSelector"]["cca.kubevirt.io/measurement-algo-sha512"] == "true"
        assert resolved["parameters"]["measurementLog"] is True
    # Everything else is untouched.
    for key in original["spec"]:
        if key != "domain":
            assert result["spec"][key] == original["spec"][key]
    # Fed back through validation: admitted; and mutation is now a no-op (idempotent).
    assert validate_vmi(result, operation="CREATE", cluster=ON) == []
    assert plan_vmi(result, ON).patch == []


def test_kubevirt_examples_with_their_own_sidecar_are_among_the_manifests() -> None:
    assert {p.stem for p in OWN_SIDECARS} >= {
        "vmi-with-sidecar-hook",
        "vmi-with-sidecar-hook-configmap",
    }


@pytest.mark.parametrize("path", OWN_SIDECARS, ids=[p.stem for p in OWN_SIDECARS])
def test_labelled_vmi_with_a_sidecar_of_its_own_is_refused_not_mutated(path: Any) -> None:
    """Issue 21: KubeVirt runs sidecars in socket-discovery order, so an owner's sidecar could
    run after ours and strip the Realm; the mutating webhook must not append ours beside it."""
    obj = labelled(load(path))
    plan = plan_vmi(obj, ON)
    assert plan.patch == []
    [violation] = plan.violations
    assert violation.field == f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"
    assert violation.message.startswith("holds 1 hook sidecar entry (")
    assert "that kubevirt-cca did not write; a CCA VMI runs no hook sidecar but kubevirt-cca's" in (
        violation.message
    )
    assert "Expected: no hooks.kubevirt.io/hookSidecars annotation" in violation.message
    assert validate_vmi(obj, operation="CREATE", cluster=ON) == [violation]


FOREIGN = {"image": "registry.example/strip:1", "args": ["--version", "v1alpha3"]}
OURS = hook_entry(Settings(), DEFAULT_HOOK_IMAGE)


@pytest.mark.parametrize(
    "entries",
    [
        [FOREIGN],
        [OURS, FOREIGN],  # after ours in the list: KubeVirt may still call it last
        [FOREIGN, OURS],
        [OURS, {"configMap": {"name": "script", "key": "k", "hookPath": "/usr/bin/x"}}],
        [OURS, {**FOREIGN, "args": ["--hook", "x"]}],
    ],
    ids=["alone", "after-ours", "before-ours", "configmap", "args-not-hook"],
)
def test_any_sidecar_beside_ours_is_refused_in_sidecar_mode(entries: list[Any]) -> None:
    obj = labelled(load(REALM_VMIS[0]))
    obj["metadata"].setdefault("annotations", {})[HOOK_SIDECARS_ANNOTATION] = json.dumps(entries)
    plan = plan_vmi(obj, ON)
    assert plan.patch == []
    assert fields(plan.violations) == [f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"]
    assert "did not write; a CCA VMI runs no hook sidecar but kubevirt-cca's" in (
        plan.violations[0].message
    )


@pytest.mark.parametrize("path", VMIS, ids=[p.stem for p in VMIS])
def test_unlabelled_vmi_is_left_alone(path: Any) -> None:
    obj = load(path)
    plan = plan_vmi(obj, ON)
    assert (plan.request, plan.patch, plan.violations) == (None, [], ())
    assert validate_vmi(obj, operation="CREATE", cluster=ON) == []


def test_schema_validator_catches_an_unknown_field() -> None:
    obj = load(VMIS[0])
    obj["spec"]["domain"]["launchSecurity"] = {"cca": {}}
    assert schema_errors(obj), "the structural check must flag fields KubeVirt would prune"


def test_labelled_vmi_that_skipped_mutation_is_refused_field_by_field() -> None:
    obj = labelled(load(VMIS[0]), PARAMS)
    violations = validate_vmi(obj, operation="CREATE", cluster=ON)
    assert fields(violations) == [
        "spec.nodeSelector[kubevirt.io/cca]",
        "spec.nodeSelector[cca.kubevirt.io/measurement-algo-sha512]",
        "spec.nodeSelector[cca.kubevirt.io/personalization-value]",
        "spec.nodeSelector[cca.kubevirt.io/measurement-log]",
        "spec.architecture",
        "spec.domain.devices.autoattachMemBalloon",
        "spec.evictionStrategy",
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
        f"metadata.annotations[{RESOLVED_ANNOTATION}]",
    ]
    assert all("mutating webhook" in v.message for v in violations)


def test_patch_creates_missing_parents() -> None:
    bare: dict[str, Any] = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "x", "labels": {ENABLED_LABEL: "true"}},
        "spec": {"domain": {"devices": {}, "resources": {}}},
    }
    del bare["spec"]["domain"]["devices"]
    result = admitted(bare)
    assert result["spec"]["domain"]["devices"] == {"autoattachMemBalloon": False}
    assert set(result["metadata"]["annotations"]) == {HOOK_SIDECARS_ANNOTATION, RESOLVED_ANNOTATION}


def test_existing_node_selector_and_explicit_compatible_values_are_kept() -> None:
    obj = labelled(load(VMIS[0]))
    obj["spec"].update(
        {
            "nodeSelector": {"zone": "a", "kubevirt.io/cca": "true"},
            "architecture": "arm64",
            "evictionStrategy": "External",
        }
    )
    obj["spec"]["domain"]["devices"]["autoattachMemBalloon"] = False
    result = admitted(obj)
    assert result["spec"]["nodeSelector"] == {"zone": "a", "kubevirt.io/cca": "true"}
    assert result["spec"]["evictionStrategy"] == "External"
    assert validate_vmi(result, operation="CREATE", cluster=ON) == []


REFUSALS = [
    (
        "architecture",
        lambda o: o["spec"].update(architecture="amd64"),
        "spec.architecture",
        "runs only on arm64",
    ),
    (
        "live-migrate",
        lambda o: o["spec"].update(evictionStrategy="LiveMigrate"),
        "spec.evictionStrategy",
        "cannot be live-migrated",
    ),
    (
        "live-migrate-if-possible",
        lambda o: o["spec"].update(evictionStrategy="LiveMigrateIfPossible"),
        "spec.evictionStrategy",
        "cannot be live-migrated",
    ),
    (
        "balloon",
        lambda o: o["spec"]["domain"].setdefault("devices", {}).update(autoattachMemBalloon=True),
        "spec.domain.devices.autoattachMemBalloon",
        "balloon",
    ),
    (
        "sev",
        lambda o: o["spec"]["domain"].update(launchSecurity={"sev": {}}),
        "spec.domain.launchSecurity.sev",
        "cannot also use sev",
    ),
    (
        "node-selector",
        lambda o: o["spec"].update(nodeSelector={"kubevirt.io/cca": "false"}),
        "spec.nodeSelector[kubevirt.io/cca]",
        'must be "true"',
    ),
    (
        "bad-params",
        lambda o: (
            o["metadata"]
            .setdefault("annotations", {})
            .update({LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo": "sha1"}'})
        ),
        f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}].measurementAlgo",
        "unsupported value 'sha1'",
    ),
    (
        "bad-sidecars",
        lambda o: (
            o["metadata"].setdefault("annotations", {}).update({HOOK_SIDECARS_ANNOTATION: "[{"})
        ),
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
        "not valid JSON",
    ),
    (
        "foreign-hook-entry",
        lambda o: (
            o["metadata"]
            .setdefault("annotations", {})
            .update(
                {
                    HOOK_SIDECARS_ANNOTATION: (
                        '[{"image": "evil", "args": ["hook", "--dialect", "vep"]}]'
                    )
                }
            )
        ),
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
        "differs",
    ),
    (
        "forged-resolved",
        lambda o: (
            o["metadata"]
            .setdefault("annotations", {})
            .update({RESOLVED_ANNOTATION: '{"dialect": "openeuler"}'})
        ),
        f"metadata.annotations[{RESOLVED_ANNOTATION}]",
        "written by kubevirt-cca",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_conflicting_vmi_is_refused_by_mutation_and_validation(
    change: Any, field: str, words: str
) -> None:
    obj = labelled(load(VMIS[0]))
    change(obj)
    for violations in (
        plan_vmi(obj, ON).violations,
        validate_vmi(obj, operation="CREATE", cluster=ON),
    ):
        assert field in fields(violations)
        assert any(words in v.message for v in violations if v.field == field)
    assert plan_vmi(obj, ON).patch == []


def test_every_problem_is_reported_not_only_the_first() -> None:
    obj = labelled(load(VMIS[0]), '{"measurementAlgo": "md5"}')
    obj["spec"].update(architecture="s390x", evictionStrategy="LiveMigrate")
    cluster = ClusterView(gates=FeatureGates(frozenset()))
    violations = plan_vmi(obj, cluster).violations
    # A bad request is reported alone (nothing else can be judged without it) ...
    assert len(violations) == 1
    obj = labelled(load(VMIS[0]))
    obj["spec"].update(architecture="s390x", evictionStrategy="LiveMigrate")
    messages = [v.message for v in plan_vmi(obj, cluster).violations]
    # ... otherwise gates, architecture and eviction all at once.
    assert "WorkloadEncryptionCCA feature gate is not enabled in kubevirt-config" in messages
    assert any(m.startswith("Sidecar feature gate is not enabled") for m in messages)
    assert len(messages) == 4


def test_parameters_without_label_are_refused_everywhere() -> None:
    obj = load(VMIS[0])
    obj["metadata"].setdefault("annotations", {})[LAUNCH_SECURITY_ANNOTATION] = "{}"
    for violations in (
        plan_vmi(obj, ON).violations,
        validate_vmi(obj, operation="CREATE", cluster=ON),
    ):
        assert any("need the label" in v.message for v in violations)


@pytest.mark.parametrize(
    ("gates", "disabled", "missing"),
    [
        (["Sidecar"], [], ["WorkloadEncryptionCCA"]),
        (["WorkloadEncryptionCCA"], [], ["Sidecar"]),
        (["WorkloadEncryptionCCA", "Sidecar"], ["Sidecar"], ["Sidecar"]),
        ([], [], ["WorkloadEncryptionCCA", "Sidecar"]),
    ],
)
def test_feature_gates_from_the_kubevirt_cr(
    gates: list[str], disabled: list[str], missing: list[str]
) -> None:
    cr = {
        "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {
            "configuration": {
                "developerConfiguration": {"featureGates": gates, "disabledFeatureGates": disabled}
            }
        },
    }
    cluster = ClusterView(gates=gates_from_kubevirt(cr))
    violations = plan_vmi(labelled(load(VMIS[0])), cluster).violations
    assert [v.message.split(" ")[0] for v in violations] == missing
    assert all(v.field == f"metadata.labels[{ENABLED_LABEL}]" for v in violations)


def test_unreadable_kubevirt_cr_refuses_cca_but_not_plain_vmis() -> None:
    cluster = ClusterView(gates=None, gates_problem="the API server answered 403: forbidden")
    violations = plan_vmi(labelled(load(VMIS[0])), cluster).violations
    assert len(violations) == 1
    assert "403: forbidden" in violations[0].message and "fail closed" in violations[0].message
    assert plan_vmi(load(VMIS[0]), cluster).violations == ()


def test_malformed_kubevirt_cr_and_config() -> None:
    with pytest.raises(SettingsError, match="featureGates"):
        gates_from_kubevirt(
            {"spec": {"configuration": {"developerConfiguration": {"featureGates": "Sidecar"}}}}
        )
    settings, image, problem = config_from_map({"dialect": "libvirt-12", "hookImage": "a b"})
    assert settings == Settings() and image == DEFAULT_HOOK_IMAGE
    assert problem is not None and "dialect" in problem and "hookImage" in problem
    cluster = ClusterView(gates=all_gates_on(), config_problem=problem)
    assert (
        "kubevirt-cca-config is invalid"
        in plan_vmi(labelled(load(VMIS[0])), cluster).violations[0].message
    )


def test_config_map_settings_reach_the_hook_entry_and_record() -> None:
    settings, image, problem = config_from_map(
        {
            "dialect": "qemu-commandline",
            "firmware": "/opt/cca.fd",
            "virtioIOMMU": "off",
            "hookImage": "registry.example/kubevirt-cca:1.2",
        }
    )
    assert problem is None
    cluster = ClusterView(gates=all_gates_on(), settings=settings, hook_image=image)
    result = admitted(labelled(load(VMIS[0])), cluster)
    entry = json.loads(result["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION])[-1]
    assert entry == {
        "image": "registry.example/kubevirt-cca:1.2",
        "args": [
            "hook",
            "--dialect",
            "qemu-commandline",
            "--firmware",
            "/opt/cca.fd",
            "--virtio-iommu",
            "off",
        ],
    }
    assert settings.dialect is Dialect.QEMU_COMMANDLINE
    assert validate_vmi(result, operation="CREATE", cluster=cluster) == []
    # The same VMI checked against the default configuration: its hook entry is not ours.
    assert validate_vmi(result, operation="CREATE", cluster=ON)


def test_oldest_live_kubevirt_cr_is_used() -> None:
    old = {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    new = {"metadata": {"name": "b", "creationTimestamp": "2026-02-01T00:00:00Z"}}
    gone = {
        "metadata": {
            "name": "c",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "deletionTimestamp": "2026-03-01T00:00:00Z",
        }
    }
    assert pick_kubevirt([new, gone, old]) is old
    assert pick_kubevirt([gone]) is None


# --- UPDATE ------------------------------------------------------------------------------------


def _admitted_vmi() -> dict[str, Any]:
    return admitted(labelled(load(VMIS[0]), PARAMS))


UPDATES = [
    (
        "remove-label",
        lambda o: o["metadata"]["labels"].pop(ENABLED_LABEL),
        f"metadata.labels[{ENABLED_LABEL}]",
    ),
    (
        "change-params",
        lambda o: o["metadata"]["annotations"].update(
            {LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo": "sha256"}'}
        ),
        f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]",
    ),
    (
        "drop-hook",
        lambda o: o["metadata"]["annotations"].update({HOOK_SIDECARS_ANNOTATION: "[]"}),
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
    ),
    (
        "edit-resolved",
        lambda o: o["metadata"]["annotations"].update({RESOLVED_ANNOTATION: "{}"}),
        f"metadata.annotations[{RESOLVED_ANNOTATION}]",
    ),
]


def _append_sidecar(o: dict[str, Any], entry: dict[str, Any]) -> None:
    annotations = o["metadata"]["annotations"]
    entries = json.loads(annotations[HOOK_SIDECARS_ANNOTATION])
    annotations[HOOK_SIDECARS_ANNOTATION] = json.dumps([*entries, entry])


UPDATES += [
    (
        "append-sidecar",
        lambda o: _append_sidecar(o, FOREIGN),
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
    ),
    (
        "append-copy-of-ours",
        lambda o: _append_sidecar(o, OURS),
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
    ),
]


def test_update_appending_a_sidecar_says_why() -> None:
    old = _admitted_vmi()
    new = json.loads(json.dumps(old))
    _append_sidecar(new, FOREIGN)
    [violation] = validate_vmi(new, operation="UPDATE", cluster=ON, old=old)
    assert violation.message.startswith(
        "cannot gain hook sidecar entries on an existing CCA VMI, got 1 hook sidecar entry "
        "(image 'registry.example/strip:1') more; a CCA VMI runs no hook sidecar but "
        "kubevirt-cca's"
    )
    # Re-serialising the list as it was is no change.
    same = json.loads(json.dumps(old))
    entries = json.loads(same["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION])
    same["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION] = json.dumps(entries, indent=2)
    assert validate_vmi(same, operation="UPDATE", cluster=ON, old=old) == []


@pytest.mark.parametrize(("change", "field"), [u[1:] for u in UPDATES], ids=[u[0] for u in UPDATES])
def test_update_of_cca_metadata_is_refused(change: Any, field: str) -> None:
    old = _admitted_vmi()
    new = json.loads(json.dumps(old))
    change(new)
    assert fields(validate_vmi(new, operation="UPDATE", cluster=ON, old=old)) == [field]


def test_update_that_leaves_cca_alone_is_allowed_even_with_gates_off() -> None:
    old = _admitted_vmi()
    new = json.loads(json.dumps(old))
    new["metadata"]["labels"]["kubevirt.io/nodeName"] = "node1"
    new["metadata"]["annotations"]["kubevirt.io/latest-observed-api-version"] = "v1"
    new["status"] = {"phase": "Running"}
    off = ClusterView(gates=None, gates_problem="unreachable")
    assert validate_vmi(new, operation="UPDATE", cluster=off, old=old) == []


def test_adding_the_label_to_an_existing_vmi_is_refused() -> None:
    old = load(VMIS[0])
    new = labelled(old)
    violations = validate_vmi(new, operation="UPDATE", cluster=ON, old=old)
    assert fields(violations) == [f"metadata.labels[{ENABLED_LABEL}]"]
    assert "cannot become a CCA Realm" in violations[0].message


# --- templates ---------------------------------------------------------------------------------


def _own_sidecars(path: Any) -> bool:
    annotations = template_node(load(path)).get("metadata", {}).get("annotations", {})
    return HOOK_SIDECARS_ANNOTATION in annotations


SIDECAR_TEMPLATES = [p for p in TEMPLATES if _own_sidecars(p)]
REALM_TEMPLATES = [p for p in TEMPLATES if not _own_sidecars(p)]


@pytest.mark.parametrize("path", SIDECAR_TEMPLATES, ids=[p.stem for p in SIDECAR_TEMPLATES])
def test_template_with_a_sidecar_of_its_own_is_refused_early(path: Any) -> None:
    plain = load(path)
    assert validate_template(plain, operation="CREATE", cluster=ON) == []
    violations = validate_template(labelled(plain), operation="CREATE", cluster=ON)
    assert fields(violations) == [f"spec.template.metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"]
    assert "a CCA VMI runs no hook sidecar but kubevirt-cca's" in violations[0].message


@pytest.mark.parametrize("path", REALM_TEMPLATES, ids=[p.stem for p in REALM_TEMPLATES])
def test_templates(path: Any) -> None:
    plain = load(path)
    assert validate_template(plain, operation="CREATE", cluster=ON) == []
    cca = labelled(plain, PARAMS)
    assert validate_template(cca, operation="CREATE", cluster=ON) == []
    off = ClusterView(gates=FeatureGates(frozenset({"Sidecar"})))
    violations = validate_template(cca, operation="CREATE", cluster=off)
    prefix = {"VirtualMachinePool": "spec.virtualMachineTemplate.spec.template"}.get(
        plain["kind"], "spec.template"
    )
    assert fields(violations) == [f"{prefix}.metadata.labels[{ENABLED_LABEL}]"]
    # A metadata-only update of an unchanged template is never blocked, gates or not ...
    updated = json.loads(json.dumps(cca))
    updated["metadata"]["finalizers"] = ["kubevirt.io/virtualMachineControllerFinalize"]
    assert validate_template(updated, operation="UPDATE", cluster=off, old=cca) == []
    # ... but a template change is checked.
    template_node(updated)["spec"]["evictionStrategy"] = "LiveMigrate"
    assert f"{prefix}.spec.evictionStrategy" in fields(
        validate_template(updated, operation="UPDATE", cluster=ON, old=cca)
    )


# --- migrations --------------------------------------------------------------------------------


def test_migration_of_a_cca_vmi_is_refused_with_kubevirts_wording() -> None:
    migration = next(load(p) for p in MANIFESTS if p.stem == "migration-job")
    violations = list(judge_migration(migration, _admitted_vmi()).violations)
    assert [v.message for v in violations] == [MIGRATION_REFUSAL]
    assert MIGRATION_REFUSAL == (
        "Cannot migrate VMI, Reason: CCANotLiveMigratable, Message: VMI uses CCA"
    )
    assert list(judge_migration(migration, load(VMIS[0])).violations) == []
    assert list(judge_migration(migration, None).violations) == []
    refused = list(judge_migration(migration, None, lookup_problem="timeout").violations)
    assert "cannot read VMI" in refused[0].message
    assert judge_migration({"spec": {}}, None).violations[0].field == "spec.vmiName"


# --- property: the patch applies cleanly to any VMI shape ----------------------------------------

_OPTIONAL = st.fixed_dictionaries(
    {},
    optional={
        "annotations": st.dictionaries(
            st.sampled_from(["a", "b/c", HOOK_SIDECARS_ANNOTATION]),
            # Empty, or ours already (a reinvocation); another sidecar is refused (above).
            st.sampled_from(["[]", "", json.dumps([OURS])]),
        ),
        "nodeSelector": st.dictionaries(
            st.sampled_from(["zone", "kubevirt.io/cca"]), st.just("true")
        ),
        "devices": st.fixed_dictionaries(
            {}, optional={"disks": st.just([]), "autoattachMemBalloon": st.just(False)}
        ),
        "architecture": st.just("arm64"),
        "evictionStrategy": st.sampled_from(["None", "External"]),
        "params": st.sampled_from(["{}", '{"measurementAlgo": "sha256"}']),
    },
)


@settings(max_examples=150, deadline=None)
@given(parts=_OPTIONAL)
def test_patch_applies_to_any_shape_and_matches_an_independent_rfc6902(
    parts: dict[str, Any],
) -> None:
    metadata: dict[str, Any] = {"name": "p", "labels": {ENABLED_LABEL: "true"}}
    if "annotations" in parts:
        metadata["annotations"] = dict(parts["annotations"])
    if "params" in parts:
        metadata.setdefault("annotations", {})[LAUNCH_SECURITY_ANNOTATION] = parts["params"]
    domain: dict[str, Any] = {"resources": {}}
    if "devices" in parts:
        domain["devices"] = parts["devices"]
    spec: dict[str, Any] = {"domain": domain}
    for key in ("nodeSelector", "architecture", "evictionStrategy"):
        if key in parts:
            spec[key] = parts[key]
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": metadata,
        "spec": spec,
    }
    plan = plan_vmi(obj, ON)
    assert plan.violations == ()
    ours = patches.apply(obj, plan.patch)
    assert ours == jsonpatch.apply_patch(obj, plan.patch)
    assert obj["metadata"] == metadata, "the input is not modified"
    assert validate_vmi(ours, operation="CREATE", cluster=ON) == []
    assert plan_vmi(ours, ON).patch == []


def test_update_of_a_vmi_whose_cca_metadata_is_unchanged_is_never_rejudged() -> None:
    # Even a VMI whose request would not pass today (it got in before kubevirt-cca was
    # installed) must not have KubeVirt's own updates refused.
    legacy = labelled(load(VMIS[0]), '{"measurementAlgo": "md5"}')
    updated = json.loads(json.dumps(legacy))
    updated["status"] = {"phase": "Running"}
    assert validate_vmi(updated, operation="UPDATE", cluster=ON, old=legacy) == []


def test_a_cca_migration_is_recognised_by_its_verdict_not_its_text() -> None:
    """admit answers a CCA VMI's migration with KubeVirt's own status message because the
    verdict says so (``cca_vmi``), not because a cause's text matches."""
    migration = {"spec": {"vmiName": "realm"}}
    assert judge_migration(migration, _admitted_vmi()).cca_vmi
    unreadable = judge_migration(migration, None, lookup_problem=MIGRATION_REFUSAL)
    assert not unreadable.cca_vmi and unreadable.violations
    assert not judge_migration(migration, load(VMIS[0])).cca_vmi
