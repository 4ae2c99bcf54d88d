"""The ValidatingAdmissionPolicies' CEL, evaluated with a real CEL implementation (cel-python)
against the shared manifests, mutated and not, and compared with the webhook's own verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from kubevirt_cca.constants import HOOK_SIDECARS_ANNOTATION, LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.sidecar_entry import hook_entry
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.install import InstallOptions
from kubevirt_cca.core.install.policy_values import render_policy, rendered_values
from kubevirt_cca.core.vmi.request import parse_request
from kubevirt_cca.errors import RequestError
from tests.admission.helpers import (
    GROUPS,
    MANIFESTS,
    labelled,
    load,
    require_manifests,
    template_node,
)
from tests.conftest import ROOT
from tests.install import vap

pytestmark = pytest.mark.shared
require_manifests()

POLICIES = ROOT / "deploy" / "policies"
ON = ClusterView(gates=all_gates_on())
KINDS = (
    "VirtualMachineInstance",
    "VirtualMachine",
    "VirtualMachineInstanceReplicaSet",
    "VirtualMachinePool",
)
OBJECTS = [p for p in MANIFESTS if load(p)["kind"] in KINDS]


class Policy:
    """One ValidatingAdmissionPolicy file: the policy, its binding, compiled validations."""

    def __init__(self, path: Path, options: InstallOptions | None = None) -> None:
        documents = list(yaml.safe_load_all(path.read_text()))
        # As ``kubevirt-cca manifests`` installs it: the options' values rendered in.
        self.policy, self.binding = (
            render_policy(d, options or InstallOptions()) for d in documents
        )
        env = celpy.Environment()
        self.programs = [
            (v["message"], env.program(env.compile(v["expression"])))
            for v in self.policy["spec"]["validations"]
        ]

    def matches(self, obj: dict[str, Any], operation: str) -> bool:
        group, _ = GROUPS.get(obj["kind"], ("kubevirt.io", "v1"))
        constraints = self.policy["spec"]["matchConstraints"]
        resource = obj["kind"].lower() + "s"
        rule_ok = any(
            group in rule["apiGroups"]
            and resource in rule["resources"]
            and operation in rule["operations"]
            for rule in constraints["resourceRules"]
        )
        selector = constraints.get("objectSelector")
        if selector is None:
            return rule_ok
        labels = obj.get("metadata", {}).get("labels", {}) or {}
        return rule_ok and all(
            e["operator"] == "Exists" and e["key"] in labels for e in selector["matchExpressions"]
        )

    def denials(
        self, obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None
    ) -> list[str]:
        """The messages of the validations that fail ([] when admitted or not matched)."""
        if not (self.matches(obj, operation) or (old is not None and self.matches(old, operation))):
            return []
        group, _ = GROUPS.get(obj["kind"], ("kubevirt.io", "v1"))
        request = {
            "kind": {"kind": obj["kind"]},
            "operation": operation,
            "resource": {"group": group, "resource": obj["kind"].lower() + "s"},
        }
        decision = vap.admit(self.policy, request=request, obj=obj, old=old)
        for message in decision.messages:
            assert "resulted in error" not in message, message
        return [" ".join(m.split()) for m in decision.messages]


@pytest.fixture(scope="module")
def need_label() -> Policy:
    return Policy(POLICIES / "cca-parameters-need-label.yaml")


@pytest.fixture(scope="module")
def needs_hook() -> Policy:
    return Policy(POLICIES / "cca-vmi-needs-hook.yaml")


def test_bindings_deny_with_their_policy(need_label: Policy, needs_hook: Policy) -> None:
    for policy in (need_label, needs_hook):
        assert policy.binding["kind"] == "ValidatingAdmissionPolicyBinding"
        assert policy.binding["spec"]["policyName"] == policy.policy["metadata"]["name"]
        assert policy.binding["spec"]["validationActions"] == ["Deny"]
        assert policy.policy["spec"]["failurePolicy"] == "Fail"
    kustomization = yaml.safe_load((POLICIES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in POLICIES.glob("cca-*.yaml"))


def params_only(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(obj))
    template_node(out).setdefault("metadata", {}).setdefault("annotations", {})[
        LAUNCH_SECURITY_ANNOTATION
    ] = '{"measurementAlgo": "sha256"}'
    return out


@pytest.mark.parametrize("path", OBJECTS, ids=[p.stem for p in OBJECTS])
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_parameters_without_label(need_label: Policy, path: Path, operation: str) -> None:
    plain = load(path)
    assert need_label.denials(plain, operation) == []
    assert need_label.denials(labelled(plain, "{}"), operation) == []
    refused = need_label.denials(params_only(plain), operation)
    assert len(refused) == 1 and "CCA parameters need the label" in refused[0]
    # The webhook's parser agrees on all three.
    assert parse_request(plain) is None
    assert parse_request(labelled(plain, "{}")) is not None
    with pytest.raises(RequestError, match="need the label"):
        parse_request(params_only(plain))
    # A label with another value does not count as asking for a Realm, in both.
    odd = params_only(plain)
    template_node(odd)["metadata"].setdefault("labels", {})["cca.kubevirt.io/enabled"] = "yes"
    assert need_label.denials(odd, operation)
    with pytest.raises(RequestError):
        parse_request(odd)


VMIS = [p for p in OBJECTS if load(p)["kind"] == "VirtualMachineInstance"]
OURS = hook_entry(ON.settings, ON.hook_image)


@pytest.mark.parametrize("path", VMIS, ids=[p.stem for p in VMIS])
def test_backstop_refuses_labelled_vmis_that_skipped_mutation(
    needs_hook: Policy, path: Path
) -> None:
    plain = load(path)
    assert needs_hook.denials(plain) == []
    skipped = labelled(plain)
    refused = needs_hook.denials(skipped)
    assert [m.split(":")[0] for m in refused] == [
        "spec.nodeSelector[kubevirt.io/cca]",
        f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
    ]
    annotations = template_node(plain)["metadata"].get("annotations", {})
    if HOOK_SIDECARS_ANNOTATION in annotations:
        # A sidecar of its own: the webhook refuses it (issue 21), and so does the backstop
        # once ours is added beside it.
        assert plan_vmi(skipped, ON).violations
        beside = json.loads(json.dumps(skipped))
        entries = json.loads(annotations[HOOK_SIDECARS_ANNOTATION])
        beside["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION] = json.dumps([*entries, OURS])
        beside["spec"]["nodeSelector"] = {"kubevirt.io/cca": "true"}
        assert [m.split(":")[0] for m in needs_hook.denials(beside)] == [
            f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"
        ]
        return
    mutated = patches.apply(skipped, plan_vmi(skipped, ON).patch)
    assert needs_hook.denials(mutated) == []
    # An UPDATE is not re-judged (running VMIs are updated by KubeVirt all the time) ...
    assert needs_hook.denials(skipped, "UPDATE", old=skipped) == []
    assert needs_hook.denials(mutated, "UPDATE", old=mutated) == []


def test_backstop_reads_the_hook_entry_not_just_the_annotation(needs_hook: Policy) -> None:
    vmi = patches.apply(labelled(load(VMIS[0])), plan_vmi(labelled(load(VMIS[0])), ON).patch)
    annotations = vmi["metadata"]["annotations"]
    entries = json.loads(annotations[HOOK_SIDECARS_ANNOTATION])
    annotations[HOOK_SIDECARS_ANNOTATION] = json.dumps(entries, indent=2)  # other spacing: ok
    assert needs_hook.denials(vmi) == []
    annotations[HOOK_SIDECARS_ANNOTATION] = json.dumps(
        [{"image": "someone-else", "args": ["--version", "v1alpha2"]}]
    )
    assert len(needs_hook.denials(vmi)) == 1
    vmi["spec"]["nodeSelector"]["kubevirt.io/cca"] = "false"
    assert len(needs_hook.denials(vmi)) == 2


# --- issue 13: the backstop reads our exact entry, with the install's image -----------------------


def _admitted() -> dict[str, Any]:
    vmi = labelled(load(VMIS[0]))
    admitted: dict[str, Any] = patches.apply(vmi, plan_vmi(vmi, ON).patch)
    return admitted


def _with_sidecars(value: Any) -> dict[str, Any]:
    vmi = _admitted()
    vmi["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION] = (
        value if isinstance(value, str) else json.dumps(value)
    )
    return vmi


def test_the_backstop_pins_the_image_and_the_shape(needs_hook: Policy) -> None:
    ours = json.loads(_admitted()["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION])[-1]
    image = ours["image"]
    user = {"image": "user/sidecar:1", "args": ["--x"]}
    admitted = [[ours]]
    decoys = {
        # Issue 21: any other sidecar, before or after ours, could undo the Realm.
        "after a user's sidecar": [user, ours],
        "a second copy of ours": [ours, ours],
        "after a script sidecar": [{"args": ["--version", "v1alpha2"], "configMap": {}}, ours],
        "another image": [{**ours, "image": "attacker/hook:1"}],
        "args [hook] only, another image": [{"image": "attacker/hook:1", "args": ["hook"]}],
        "nested under another field": [{"image": "user/x:1", "args": ["--x"], "x": [ours]}],
        "nested in an object": [{"image": "user/x:1", "wrapped": ours}],
        "an extra member": [{**ours, "command": ["/bin/sh"]}],
        "not the last entry": [ours, user],
        "image as a prefix": [{**ours, "image": image + "-evil"}],
        "a regex-like image": [{**ours, "image": image.replace(".", "X")}],
    }
    for entries in admitted:
        assert needs_hook.denials(_with_sidecars(entries)) == [], entries
    for name, entries in decoys.items():
        refused = needs_hook.denials(_with_sidecars(entries))
        assert [m.split(":")[0] for m in refused] == [
            f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"
        ], name
    # The image is rendered in at install: another install image, another pin.
    other = InstallOptions(image="registry.example/kubevirt-cca:2.0")
    assert len(Policy(POLICIES / "cca-vmi-needs-hook.yaml", other).denials(_admitted())) == 1
    moved = _with_sidecars([{**ours, "image": "registry.example/kubevirt-cca:2.0"}])
    assert Policy(POLICIES / "cca-vmi-needs-hook.yaml", other).denials(moved) == []


def test_the_backstop_refuses_an_update_that_changes_the_sidecar_list(needs_hook: Policy) -> None:
    old = _admitted()
    ours = json.loads(old["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION])
    for changed in (
        [*ours, {"image": "user/strip:1", "args": ["--x"]}],
        [],
        [*ours, *ours],
    ):
        new = _with_sidecars(changed)
        refused = needs_hook.denials(new, "UPDATE", old=old)
        assert [m.split(":")[0] for m in refused] == [
            f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"
        ], changed
        assert "the hook sidecar list of an existing CCA VMI cannot change" in refused[0]
    gone = json.loads(json.dumps(old))
    del gone["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION]
    assert len(needs_hook.denials(gone, "UPDATE", old=old)) == 1
    # Anything else may change; a plain VMI's sidecars are not ours to judge.
    status = {**old, "status": {"phase": "Running"}}
    assert needs_hook.denials(status, "UPDATE", old=old) == []
    plain = load(next(p for p in VMIS if p.stem == "vmi-with-sidecar-hook"))
    more = json.loads(json.dumps(plain))
    more["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION] = "[]"
    assert needs_hook.denials(more, "UPDATE", old=plain) == []


def test_the_plugin_annotation_counts_only_outside_sidecar_mode(needs_hook: Policy) -> None:
    vmi = _admitted()
    annotations = vmi["metadata"]["annotations"]
    del annotations[HOOK_SIDECARS_ANNOTATION]
    annotations["cca.kubevirt.io/integration"] = "plugin"
    assert needs_hook.denials(vmi) == []
    # The Plugins path calls the plugin after every hook sidecar: the user's own are let through.
    annotations[HOOK_SIDECARS_ANNOTATION] = json.dumps([{"image": "user/x:1", "args": ["--x"]}])
    assert needs_hook.denials(vmi) == []
    sidecar = InstallOptions(integration_mode=IntegrationMode.SIDECAR)
    assert len(Policy(POLICIES / "cca-vmi-needs-hook.yaml", sidecar).denials(vmi)) == 1


def test_no_policy_has_a_parameter_and_the_values_are_rendered_in() -> None:
    """Issue 21 item 6: kube-apiserver 1.36 loses a policy's parameter ConfigMap after an
    uninstall and reinstall (kubernetes#133827), so the values are literals of the install."""
    for path in sorted(POLICIES.glob("cca-*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert "paramKind" not in document["spec"], path.name
            assert "paramRef" not in document["spec"], path.name
            assert "params." not in json.dumps(document), path.name
    options = InstallOptions(
        image="registry.example/team/kubevirt-cca:3.1", integration_mode=IntegrationMode.PLUGIN
    )
    for name in ("cca-vmi-needs-hook.yaml", "cca-launcher-pod-needs-plugin.yaml"):
        source = Policy(POLICIES / name)
        assert rendered_values(source.policy) == {
            "hookImage": InstallOptions().image,
            "integrationMode": "auto",
        }
        assert rendered_values(Policy(POLICIES / name, options).policy) == {
            "hookImage": "registry.example/team/kubevirt-cca:3.1",
            "integrationMode": "plugin",
        }
