"""Our admission through the real API server, as a user meets it with ``kubectl create``.

The webhook configurations and ValidatingAdmissionPolicies are the ones ``kubevirt-cca
manifests`` prints (only the webhooks' clientConfig points at the local process); the objects
are stored by the real API server after its CRD pruning and defaulting.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.peers.apiserver.conftest import Installed

pytestmark = pytest.mark.peers

ENABLED = "cca.kubevirt.io/enabled"
PARAMETERS = "cca.kubevirt.io/launch-security"
HOOKS = "hooks.kubevirt.io/hookSidecars"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    loaded["metadata"].pop("namespace", None)
    return loaded


def vmi(
    name: str,
    *,
    cca: bool = True,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj = example("vmi-cca.yaml")
    obj["metadata"]["name"] = name
    if not cca:
        obj["metadata"].pop("labels")
    if annotations:
        obj["metadata"]["annotations"] = annotations
    obj["spec"].update(spec or {})
    return obj


def template_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {k: v for k, v in obj["metadata"].items() if k in ("labels", "annotations")},
        "spec": obj["spec"],
    }


def vm(name: str, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"runStrategy": "Halted", "template": template},
    }


def replica_set(name: str, template: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    template = copy.deepcopy(template)
    template["metadata"].setdefault("labels", {}).update(labels)
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceReplicaSet",
        "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template},
    }


def pool(name: str, template: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    inner = copy.deepcopy(template)
    inner["metadata"].setdefault("labels", {}).update(labels)
    return {
        "apiVersion": "pool.kubevirt.io/v1beta1",
        "kind": "VirtualMachinePool",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "virtualMachineTemplate": {
                "metadata": {"labels": labels},
                "spec": {"runStrategy": "Halted", "template": inner},
            },
        },
    }


def create(installed: Installed, namespace: str, obj: dict[str, Any]) -> str:
    """``kubectl create``; the error text when refused, "" when created."""
    done = installed.server.create(obj, namespace=namespace, check=False)
    return "" if done.returncode == 0 else done.stderr


def stored(installed: Installed, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    resource = {"VirtualMachinePool": "virtualmachinepools.pool.kubevirt.io"}.get(
        obj["kind"], obj["kind"].lower()
    )
    return installed.server.get(resource, obj["metadata"]["name"], namespace=namespace)


BAD = {PARAMETERS: json.dumps({"measurementAlgo": "md5"})}
ALGO_REFUSAL = (
    'measurementAlgo: unsupported value \'md5\'; expected one of "sha256", "sha384", "sha512"'
)


def test_a_plain_vmi_is_stored_untouched(installed: Installed, namespace: str) -> None:
    plain = vmi("plain", cca=False)
    assert create(installed, namespace, plain) == ""
    spec = stored(installed, namespace, plain)["spec"]
    assert "nodeSelector" not in spec
    assert "architecture" not in spec
    assert HOOKS not in (stored(installed, namespace, plain)["metadata"].get("annotations") or {})


def test_a_realm_vmi_is_stored_with_what_the_webhook_filled_in(
    installed: Installed, namespace: str
) -> None:
    realm = vmi("realm")
    assert create(installed, namespace, realm) == ""
    got = stored(installed, namespace, realm)
    # Everything the mutating webhook wrote survived the CRD's pruning.
    assert got["spec"]["nodeSelector"] == {"kubevirt.io/cca": "true"}
    assert got["spec"]["architecture"] == "arm64"
    assert got["spec"]["evictionStrategy"] == "None"
    assert got["spec"]["domain"]["devices"]["autoattachMemBalloon"] is False
    hooks = json.loads(got["metadata"]["annotations"][HOOKS])
    assert hooks[0]["args"][0] == "hook"
    resolved = json.loads(got["metadata"]["annotations"]["cca.kubevirt.io/resolved"])
    assert resolved["dialect"] == "vep"


@pytest.mark.parametrize(
    ("kind", "build", "field"),
    [
        ("VirtualMachineInstance", lambda t: vmi("x", annotations=BAD), "metadata"),
        ("VirtualMachine", lambda t: vm("x", t), "spec.template.metadata"),
        (
            "VirtualMachineInstanceReplicaSet",
            lambda t: replica_set("x", t),
            "spec.template.metadata",
        ),
        (
            "VirtualMachinePool",
            lambda t: pool("x", t),
            "spec.virtualMachineTemplate.spec.template.metadata",
        ),
    ],
)
def test_bad_parameters_are_refused_on_every_kind(
    installed: Installed, namespace: str, kind: str, build: Any, field: str
) -> None:
    obj = build(template_of(vmi("x", annotations=BAD)))
    refusal = create(installed, namespace, obj)
    assert f"{field}.annotations[{PARAMETERS}].{ALGO_REFUSAL}" in refusal
    assert installed.server.kubectl("get", kind, "-n", namespace, "-o", "name").stdout == ""


@pytest.mark.parametrize("build", [vm, replica_set, pool])
def test_good_templates_are_stored_with_their_request(
    installed: Installed, namespace: str, build: Any
) -> None:
    params = {PARAMETERS: json.dumps({"measurementAlgo": "sha512"})}
    obj = build("realm", template_of(vmi("x", annotations=params)))
    assert create(installed, namespace, obj) == ""
    got = stored(installed, namespace, obj)
    template = (
        got["spec"]["virtualMachineTemplate"]["spec"]["template"]
        if obj["kind"] == "VirtualMachinePool"
        else got["spec"]["template"]
    )
    assert template["metadata"]["labels"][ENABLED] == "true"
    assert json.loads(template["metadata"]["annotations"][PARAMETERS]) == {
        "measurementAlgo": "sha512"
    }


def test_refusals_name_the_field(installed: Installed, namespace: str) -> None:
    amd64 = create(installed, namespace, vmi("amd64", spec={"architecture": "amd64"}))
    assert (
        "spec.architecture: a CCA Realm runs only on arm64, got 'amd64'; set architecture "
        "to arm64 or leave it unset"
    ) in amd64
    # Parameters without the label: the plain path has no webhook; the policy refuses it.
    unlabelled = create(installed, namespace, vmi("unlabelled", cca=False, annotations=BAD))
    assert (
        "ValidatingAdmissionPolicy 'kubevirt-cca-parameters-need-label' with binding "
        "'kubevirt-cca-parameters-need-label' denied request: metadata.annotations"
        f'[{PARAMETERS}]: CCA parameters need the label {ENABLED}: "true"'
    ) in unlabelled


def test_update_rules_and_migration(installed: Installed, namespace: str) -> None:
    realm = vmi("realm")
    assert create(installed, namespace, realm) == ""
    kubectl = installed.server.kubectl
    unlabel = kubectl("label", "vmi", "realm", "-n", namespace, f"{ENABLED}-", check=False)
    assert unlabel.returncode != 0
    assert ENABLED in unlabel.stderr
    rehook = kubectl(
        "annotate", "vmi", "realm", "-n", namespace, "--overwrite", f"{HOOKS}=[]", check=False
    )
    assert rehook.returncode != 0
    assert HOOKS in rehook.stderr
    # Metadata that is not ours may change.
    assert kubectl("label", "vmi", "realm", "-n", namespace, "team=a").returncode == 0
    migration = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "move"},
        "spec": {"vmiName": "realm"},
    }
    refused = create(installed, namespace, migration)
    # KubeVirt's own sentence for a VMI that is not live-migratable.
    assert "Cannot migrate VMI, Reason: CCANotLiveMigratable, Message: VMI uses CCA" in refused
    assert create(installed, namespace, vmi("plain", cca=False)) == ""
    plain_move = {**migration, "metadata": {"name": "move-plain"}, "spec": {"vmiName": "plain"}}
    assert create(installed, namespace, plain_move) == ""


@pytest.fixture
def webhook_stopped(installed: Installed) -> Iterator[None]:
    installed.webhook.stop()
    try:
        yield
    finally:
        installed.webhook.start()


def test_webhook_down_refuses_realms_and_lets_plain_vmis_through(
    installed: Installed, namespace: str, webhook_stopped: None
) -> None:
    refused = create(installed, namespace, vmi("realm"))
    assert 'failed calling webhook "mutate-vmi.cca.kubevirt.io"' in refused
    assert create(installed, namespace, vmi("plain", cca=False)) == ""
    assert create(installed, namespace, vm("plain-vm", template_of(vmi("x", cca=False)))) == ""


@pytest.fixture
def webhooks_deleted(installed: Installed) -> Iterator[None]:
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        installed.server.kubectl("delete", kind, "kubevirt-cca")
    try:
        yield
    finally:
        installed.reapply_webhook_configurations()


def test_the_policies_alone_still_refuse_what_they_promise(
    installed: Installed, namespace: str, webhooks_deleted: None
) -> None:
    refused = create(installed, namespace, vmi("realm"))
    assert "ValidatingAdmissionPolicy 'kubevirt-cca-vmi-needs-hook'" in refused
    assert (
        "spec.nodeSelector[kubevirt.io/cca]: a VMI labelled cca.kubevirt.io/enabled must be "
        "scheduled on CCA-capable nodes"
    ) in refused
    unlabelled = create(installed, namespace, vmi("unlabelled", cca=False, annotations=BAD))
    assert "kubevirt-cca-parameters-need-label" in unlabelled
    template = create(
        installed, namespace, vm("vm", template_of(vmi("x", cca=False, annotations=BAD)))
    )
    assert (
        f"spec.template.metadata.annotations[{PARAMETERS}]: CCA parameters need the label"
        in template
    )
    # A realm VMI that carries what the webhook would have added passes the policy (the
    # policies are the backstop, not a second webhook) - and plain VMIs are untouched.
    assert create(installed, namespace, vmi("plain", cca=False)) == ""


# --- issue 21 item 11: VEP 129's native launchSecurity.cca on stock KubeVirt's schema -----------

NATIVE_PARAMS = {"measurementAlgo": "sha512", "measurementLog": True}


def kubectl_create(
    installed: Installed, namespace: str, obj: dict[str, Any], validate: str
) -> tuple[int, str]:
    done = installed.server.kubectl(
        "create",
        f"--namespace={namespace}",
        f"--validate={validate}",
        "-f",
        "-",
        stdin=yaml.safe_dump(obj),
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda t: None, "spec.domain.launchSecurity"),
        (lambda t: vm("native-vm", t), "spec.template.spec.domain.launchSecurity"),
        (
            lambda t: pool("native-pool", t),
            "spec.virtualMachineTemplate.spec.template.spec.domain.launchSecurity",
        ),
    ],
    ids=["VirtualMachineInstance", "VirtualMachine", "VirtualMachinePool"],
)
def test_native_cca_is_an_unknown_field_and_refused_once_pruned(
    installed: Installed, namespace: str, build: Any, field: str
) -> None:
    """KubeVirt's real CRD schema has no launchSecurity.cca. With strict field validation
    (kubectl's default) the API server refuses it as an unknown field; without it, the API
    server prunes it to launchSecurity: {} and our webhook sees that and refuses, saying the
    parameters were dropped and how to give them."""
    native = vmi("native")
    native["spec"]["domain"]["launchSecurity"] = {"cca": NATIVE_PARAMS}
    obj = build(template_of(native)) or native
    code, strict = kubectl_create(installed, namespace, obj, "strict")
    assert code != 0
    assert f'unknown field "{field}.cca"' in strict, strict
    code, lax = kubectl_create(installed, namespace, obj, "false")
    assert code != 0, "a pruned native request was stored"
    # kubectl prints a webhook's 422 refusal as "The request is invalid: FIELD: MESSAGE".
    assert lax.startswith(f"The request is invalid: {field}: is empty"), lax
    assert (
        f"{field}: is empty: the API server dropped cca from VEP 129's native form {field}.cca"
    ) in lax, lax
    assert "the Realm's parameters are gone" in lax
    assert f'the label {ENABLED}: "true" plus the annotation {PARAMETERS}' in lax
    assert "run 'kubevirt-cca convert' on the manifest you applied" in lax
    kind = obj["kind"]
    assert installed.server.kubectl("get", kind, "-n", namespace, "-o", "name").stdout == ""
    # Written as the advice says (label + annotation), the same request is stored.
    fixed = vmi("native", annotations={PARAMETERS: json.dumps(NATIVE_PARAMS)})
    fixed_obj = build(template_of(fixed)) or fixed
    code, err = kubectl_create(installed, namespace, fixed_obj, "strict")
    assert code == 0, err


def test_an_unlabelled_vmi_pruned_to_an_empty_launch_security_is_not_ours(
    installed: Installed, namespace: str
) -> None:
    """Without the label our webhooks do not see the VMI (objectSelector): the API server
    stores what it pruned, launchSecurity: {}, which KubeVirt's own admission refuses (on
    arm64: "No launchSecurity support for architecture: arm64"; virt-api is not part of this
    lane). docs/vm-owners.md says so."""
    native = vmi("unlabelled-native", cca=False)
    native["spec"]["domain"]["launchSecurity"] = {"cca": NATIVE_PARAMS}
    code, err = kubectl_create(installed, namespace, native, "false")
    assert code == 0, err
    got = stored(installed, namespace, native)
    assert got["spec"]["domain"]["launchSecurity"] == {}
    assert ENABLED not in (got["metadata"].get("labels") or {})
