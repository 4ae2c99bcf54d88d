"""A request in a plausible wrong place is refused, never ignored (issue 13, DESIGN.md "Fail
closed"): by the parser every reader shares, by admission (webhook core and ``validate``), and,
for objects the webhooks never see, by the ValidatingAdmissionPolicy cca-keys-in-place, whose
CEL is evaluated here with a real CEL implementation and compared with the parser case by case.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION, RESOLVED_ANNOTATION
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.validate import validate_template, validate_vmi
from kubevirt_cca.core.vmi.placement import misplaced_keys
from kubevirt_cca.core.vmi.request import parse_request
from kubevirt_cca.errors import RequestError
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT
from tests.install import vap

ON = ClusterView(gates=all_gates_on())
POLICY_FILE = ROOT / "deploy" / "policies" / "cca-keys-in-place.yaml"
PARAMS = '{"measurementAlgo": "sha256"}'
RESOURCES = {
    "VirtualMachineInstance": ("kubevirt.io", "virtualmachineinstances"),
    "VirtualMachine": ("kubevirt.io", "virtualmachines"),
    "VirtualMachineInstanceReplicaSet": ("kubevirt.io", "virtualmachineinstancereplicasets"),
    "VirtualMachinePool": ("pool.kubevirt.io", "virtualmachinepools"),
}
VMI_SPEC: dict[str, Any] = {"domain": {"devices": {}}}
BASES: dict[str, dict[str, Any]] = {
    "VirtualMachineInstance": {
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "v"},
        "spec": VMI_SPEC,
    },
    "VirtualMachine": {
        "kind": "VirtualMachine",
        "metadata": {"name": "v"},
        "spec": {"template": {"metadata": {}, "spec": VMI_SPEC}},
    },
    "VirtualMachineInstanceReplicaSet": {
        "kind": "VirtualMachineInstanceReplicaSet",
        "metadata": {"name": "v"},
        "spec": {"template": {"metadata": {}, "spec": VMI_SPEC}},
    },
    "VirtualMachinePool": {
        "kind": "VirtualMachinePool",
        "metadata": {"name": "v"},
        "spec": {
            "virtualMachineTemplate": {
                "metadata": {},
                "spec": {"template": {"metadata": {}, "spec": VMI_SPEC}},
            }
        },
    },
}
TEMPLATE = {
    "VirtualMachineInstance": (),
    "VirtualMachine": ("spec", "template"),
    "VirtualMachineInstanceReplicaSet": ("spec", "template"),
    "VirtualMachinePool": ("spec", "virtualMachineTemplate", "spec", "template"),
}


def _meta(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = obj
    for part in path:
        node = node.setdefault(part, {})
    metadata: dict[str, Any] = node.setdefault("metadata", {})
    return metadata


def put(
    path: tuple[str, ...] | None, section: str, key: str, value: str
) -> Callable[[dict[str, Any]], None]:
    """Put ``key`` in ``section`` of the metadata at ``path`` (None: the VMI template)."""

    def change(obj: dict[str, Any]) -> None:
        where = TEMPLATE[obj["kind"]] if path is None else path
        _meta(obj, where).setdefault(section, {})[key] = value

    return change


# (name, kinds, changes, the field refused, words the message must contain)
Case = tuple[str, tuple[str, ...], list[Callable[[dict[str, Any]], None]], str, tuple[str, ...]]
OWNERS = ("VirtualMachine", "VirtualMachineInstanceReplicaSet", "VirtualMachinePool")
CASES: list[Case] = [
    (
        "label-on-own-metadata",
        OWNERS,
        [put((), "labels", ENABLED_LABEL, "true")],
        f"metadata.labels[{ENABLED_LABEL}]",
        ("own metadata", "metadata.labels[" + ENABLED_LABEL),
    ),
    (
        "params-on-own-metadata-label-on-template",
        OWNERS,
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put((), "annotations", LAUNCH_SECURITY_ANNOTATION, PARAMS),
        ],
        f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]",
        ("own metadata", "metadata.annotations[" + LAUNCH_SECURITY_ANNOTATION),
    ),
    (
        "label-on-pool-vm-template",
        ("VirtualMachinePool",),
        [put(("spec", "virtualMachineTemplate"), "labels", ENABLED_LABEL, "true")],
        f"spec.virtualMachineTemplate.metadata.labels[{ENABLED_LABEL}]",
        (
            "spec.virtualMachineTemplate",
            "spec.virtualMachineTemplate.spec.template.metadata.labels",
        ),
    ),
    (
        "params-on-pool-vm-template",
        ("VirtualMachinePool",),
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put(
                ("spec", "virtualMachineTemplate"),
                "annotations",
                LAUNCH_SECURITY_ANNOTATION,
                PARAMS,
            ),
        ],
        f"spec.virtualMachineTemplate.metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]",
        ("spec.virtualMachineTemplate.spec.template.metadata.annotations",),
    ),
    (
        "label-casing",
        tuple(BASES),
        [put(None, "labels", "cca.kubevirt.io/Enabled", "true")],
        "metadata.labels[cca.kubevirt.io/Enabled]",
        ("did you mean the label " + ENABLED_LABEL,),
    ),
    (
        "label-upper-casing",
        tuple(BASES),
        [put(None, "labels", "cca.kubevirt.io/ENABLED", "true")],
        "metadata.labels[cca.kubevirt.io/ENABLED]",
        ("did you mean the label " + ENABLED_LABEL,),
    ),
    (
        "camel-case-annotation",
        tuple(BASES),
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put(None, "annotations", "cca.kubevirt.io/launchSecurity", PARAMS),
        ],
        "metadata.annotations[cca.kubevirt.io/launchSecurity]",
        ("did you mean the annotation " + LAUNCH_SECURITY_ANNOTATION,),
    ),
    (
        "prefix-casing",
        tuple(BASES),
        [put(None, "annotations", "CCA.kubevirt.io/enabled", "true")],
        "metadata.annotations[CCA.kubevirt.io/enabled]",
        ("is not a kubevirt-cca key",),
    ),
    (
        "typo",
        tuple(BASES),
        [put(None, "labels", "cca.kubevirt.io/enable", "true")],
        "metadata.labels[cca.kubevirt.io/enable]",
        ("is not a kubevirt-cca key",),
    ),
    (
        "node-label-on-vm",
        tuple(BASES),
        [put(None, "labels", "cca.kubevirt.io/measurement-algo-sha256", "true")],
        "metadata.labels[cca.kubevirt.io/measurement-algo-sha256]",
        ("node labeller",),
    ),
    (
        "admin-node-override-on-vm",
        tuple(BASES),
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put(None, "annotations", "cca.kubevirt.io/libvirt-honours", "measurementLog"),
        ],
        "metadata.annotations[cca.kubevirt.io/libvirt-honours]",
        ("a node annotation the cluster admin sets; a VM cannot grant it",),
    ),
    (
        "label-as-annotation",
        tuple(BASES),
        [put(None, "annotations", ENABLED_LABEL, "true")],
        f"metadata.annotations[{ENABLED_LABEL}]",
        ("is a label, found as an annotation",),
    ),
    (
        "annotation-as-label",
        tuple(BASES),
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put(None, "labels", LAUNCH_SECURITY_ANNOTATION, "sha256"),
        ],
        f"metadata.labels[{LAUNCH_SECURITY_ANNOTATION}]",
        ("is an annotation, found as a label",),
    ),
    (
        "resolved-without-label",
        tuple(BASES),
        [put(None, "annotations", RESOLVED_ANNOTATION, "{}")],
        f"metadata.annotations[{RESOLVED_ANNOTATION}]",
        ("on CCA VMIs only",),
    ),
]
PARAMS_CASES = [
    (name, kind, changes, field, words)
    for name, kinds, changes, field, words in CASES
    for kind in kinds
]


def build(kind: str, changes: list[Callable[[dict[str, Any]], None]]) -> dict[str, Any]:
    obj = copy.deepcopy(BASES[kind])
    for change in changes:
        change(obj)
    return obj


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    documents = list(yaml.safe_load_all(POLICY_FILE.read_text()))
    assert documents[1]["spec"] == {
        "policyName": documents[0]["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert documents[0]["spec"]["failurePolicy"] == "Fail"
    return dict(documents[0])


def policy_denials(
    policy: dict[str, Any],
    obj: dict[str, Any],
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
) -> list[str]:
    group, resource = RESOURCES[obj["kind"]]
    request = {
        "kind": {"kind": obj["kind"]},
        "operation": operation,
        "resource": {"group": group, "resource": resource},
    }
    decision = vap.admit(policy, request=request, obj=obj, old=old)
    assert decision.applies
    for message in decision.messages:
        assert "resulted in error" not in message, message
    return list(decision.messages)


def _case_field(name: str, kind: str, field: str) -> str:
    own = name in ("label-on-own-metadata", "params-on-own-metadata-label-on-template")
    pool_vm = field.startswith("spec.virtualMachineTemplate.metadata")
    if own or pool_vm or kind == "VirtualMachineInstance":
        return field
    return ".".join((*TEMPLATE[kind], field))


@pytest.mark.parametrize(
    ("name", "kind", "changes", "field", "words"),
    PARAMS_CASES,
    ids=[f"{c[0]}-{c[1]}" for c in PARAMS_CASES],
)
def test_every_reader_refuses_a_misplaced_request(
    policy: dict[str, Any],
    name: str,
    kind: str,
    changes: list[Callable[[dict[str, Any]], None]],
    field: str,
    words: tuple[str, ...],
) -> None:
    obj = build(kind, changes)
    where = _case_field(name, kind, field)
    key = where[where.rindex("[") + 1 : -1]
    # The one function: a violation at the field, naming the key, where it belongs.
    found = misplaced_keys(obj)
    assert [v.field for v in found] == [where]
    assert key in found[0].message
    for word in words:
        assert word in found[0].message, found[0].message
    # The shared parser (hook, attest verify, migration) refuses it too.
    with pytest.raises(RequestError) as refused:
        parse_request(obj)
    assert where in [v.field for v in refused.value.violations]
    # Admission: the webhook's verdict (VMIs: mutate and validate; others: templates).
    if kind == "VirtualMachineInstance":
        assert where in [v.field for v in plan_vmi(obj, ON).violations]
        assert where in [v.field for v in validate_vmi(obj, operation="CREATE", cluster=ON)]
    else:
        assert where in [v.field for v in validate_template(obj, operation="CREATE", cluster=ON)]
    # The in-API-server policy refuses it whether or not the webhooks see the object, and
    # names the key and the field.
    denials = policy_denials(policy, obj)
    assert len(denials) == 1, denials
    assert denials[0].startswith(where.rsplit("[", 1)[0]), denials[0]
    assert f"[{key}]" in denials[0]


@pytest.mark.parametrize("kind", list(BASES))
def test_keys_in_their_place_are_admitted_by_both(policy: dict[str, Any], kind: str) -> None:
    for changes in (
        [],
        [put(None, "labels", ENABLED_LABEL, "true")],
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put(None, "annotations", LAUNCH_SECURITY_ANNOTATION, PARAMS),
        ],
        [
            put(None, "labels", "app", "cca"),
            put((), "labels", "app", "x"),
            put(None, "annotations", "example.com/cca.kubevirt.io", "x"),
        ],
    ):
        obj = build(kind, changes)
        assert misplaced_keys(obj) == []
        assert policy_denials(policy, obj) == []
    # A VMI admitted by the webhook (with its resolved record and hook entry) passes too.
    vmi = build("VirtualMachineInstance", [put(None, "labels", ENABLED_LABEL, "true")])
    admitted = patches.apply(vmi, plan_vmi(vmi, ON).patch)
    assert misplaced_keys(admitted) == []
    assert policy_denials(policy, admitted) == []


def test_an_update_keeps_old_stray_keys_but_refuses_new_ones(policy: dict[str, Any]) -> None:
    old = build("VirtualMachine", [put((), "labels", ENABLED_LABEL, "true")])
    new = copy.deepcopy(old)
    new["metadata"].setdefault("annotations", {})["kubevirt.io/latest-observed-api-version"] = "v1"
    # KubeVirt's own update of a VM that had the stray key before kubevirt-cca was installed.
    assert validate_template(new, operation="UPDATE", cluster=ON, old=old) == []
    assert policy_denials(policy, new, "UPDATE", old) == []
    # Adding one is refused, by both.
    added = copy.deepcopy(new)
    added["metadata"]["annotations"][LAUNCH_SECURITY_ANNOTATION] = PARAMS
    assert [v.field for v in validate_template(added, operation="UPDATE", cluster=ON, old=old)] == [
        f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]"
    ]
    assert len(policy_denials(policy, added, "UPDATE", old)) == 1
    assert len(policy_denials(policy, new, "CREATE")) == 1


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ('{"measurementAlgo": "sha256", "measurementAlgo": "sha512"}', "measurementAlgo"),
        (
            '{"personalizationValue": "a", "measurementLog": true, "personalizationValue": "b"}',
            "personalizationValue",
        ),
    ],
)
def test_duplicate_members_in_the_parameters_are_refused(raw: str, name: str) -> None:
    vmi = build(
        "VirtualMachineInstance",
        [
            put(None, "labels", ENABLED_LABEL, "true"),
            put(None, "annotations", LAUNCH_SECURITY_ANNOTATION, raw),
        ],
    )
    with pytest.raises(RequestError) as refused:
        parse_request(vmi)
    assert [v.field for v in refused.value.violations] == [
        f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]"
    ]
    assert "more than once" in refused.value.violations[0].message
    assert repr(name) in refused.value.violations[0].message
    assert plan_vmi(vmi, ON).violations


def test_validate_command_refuses_a_label_on_the_vm(tmp_path: Path) -> None:
    vm = build("VirtualMachine", [put((), "labels", ENABLED_LABEL, "true")])
    path = tmp_path / "vm.yaml"
    path.write_text(yaml.safe_dump(vm))
    result = kubevirt_cca("validate", str(path))
    assert result.returncode == 1, result.stderr
    assert (
        f"refused: metadata.labels[{ENABLED_LABEL}]: {ENABLED_LABEL} was found on the "
        "VirtualMachine's own metadata"
    ) in result.stderr
    assert f"spec.template.metadata.labels[{ENABLED_LABEL}]" in result.stderr
    assert result.stdout == ""
