"""The ValidatingAdmissionPolicies alone, on the real kube-apiserver (issue 13 on the real server).

``tests/admission`` evaluates these policies' CEL with cel-python; here the real API server
evaluates them as ``kubevirt-cca manifests`` installs them, with the webhook configurations
deleted so that the policies alone decide. Each refusal is asserted as the user reads it from
``kubectl``. Cases are batched: one ``kubectl create --dry-run=server`` per object kind (kubectl
goes on past a refused object and prints one error line per object), so the lane stays short.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.core.install.policy_values import RENDERED_POLICIES
from tests.peers.apiserver.cluster import kubevirt_cca
from tests.peers.apiserver.conftest import INSTALL_NAMESPACE, LAUNCHER, Installed
from tests.peers.apiserver.test_admission import pool, replica_set, vm, vmi

pytestmark = pytest.mark.peers

ENABLED = "cca.kubevirt.io/enabled"
PARAMS_KEY = "cca.kubevirt.io/launch-security"
RESOLVED = "cca.kubevirt.io/resolved"
INTEGRATION = "cca.kubevirt.io/integration"
HOOKS = "hooks.kubevirt.io/hookSidecars"
PARAMS = json.dumps({"measurementAlgo": "sha256"})
CONFIG = "kubevirt-cca-config"

KEYS_IN_PLACE = "kubevirt-cca-keys-in-place"
NEEDS_HOOK = "kubevirt-cca-vmi-needs-hook"
LAUNCHER_POD = "kubevirt-cca-launcher-pod-needs-plugin"
NODE_RESTRICTION = "kubevirt-cca-labeller-node-restriction"
EVENTS = "kubevirt-cca-labeller-events"

# The three explanations of kubevirt-cca-keys-in-place, word for word.
LABEL_HERE = (
    "not a kubevirt-cca label here. The only label is cca.kubevirt.io/enabled; "
    "cca.kubevirt.io/launch-security is an annotation, and "
    "cca.kubevirt.io/measurement-algo-* are node labels. Correct or remove it (a "
    "misspelt request would give a plain VM)"
)
ANNOTATION_HERE = (
    "not a kubevirt-cca annotation here. The annotations are "
    "cca.kubevirt.io/launch-security (cca.kubevirt.io/enabled is a label), and "
    "cca.kubevirt.io/resolved, cca.kubevirt.io/integration, which kubevirt-cca "
    "writes on CCA VMIs only. Correct or remove it (a misspelt request would give "
    "a plain VM)"
)
NEVER_READ = (
    "kubevirt-cca never reads its keys here, so the VMI would start without them; "
    "they belong in the VMI template, "
)
HOOK_REFUSAL = (
    f"metadata.annotations[{HOOKS}]: a VMI labelled cca.kubevirt.io/enabled needs the "
    "kubevirt-cca hook sidecar entry as the only element of the list, exactly as the webhook "
    "writes it with the install's hookImage (in integration mode plugin: the annotation "
    "cca.kubevirt.io/integration: plugin); no other hook sidecar may run beside it, since "
    "KubeVirt could call that one after ours and undo the Realm. It is refused rather than "
    "started as a plain VM. Remove other sidecar entries; if there are none, ask the cluster "
    "admin whether the kubevirt-cca webhooks are installed"
)
UPDATE_REFUSAL = (
    f"metadata.annotations[{HOOKS}]: the hook sidecar list of an existing CCA VMI cannot "
    "change: KubeVirt may create its launcher pod after this update, and a sidecar beside "
    "kubevirt-cca's could undo the Realm. Expected: the list as it was at creation"
)
SECOND_SIDECAR_REFUSAL = (
    "spec.containers: the virt-launcher pod of a VMI labelled cca.kubevirt.io/enabled runs more "
    "than one hook sidecar; without kubevirt-cca's plugin container it may run no hook sidecar "
    "but kubevirt-cca's, since KubeVirt could call another one after ours and undo the Realm. "
    "The pod is refused rather than run the VM as a plain VM. Remove the other entries of the "
    "VMI's hooks.kubevirt.io/hookSidecars"
)
NODE_SELECTOR_REFUSAL = (
    "spec.nodeSelector[kubevirt.io/cca]: a VMI labelled cca.kubevirt.io/enabled must be "
    "scheduled on CCA-capable nodes, and kubevirt-cca's mutating webhook did not set this; it "
    "is refused rather than started as a plain VM. Ask the cluster admin whether the "
    "kubevirt-cca webhooks are installed"
)
POD_REFUSAL = (
    "spec.containers: the virt-launcher pod of a VMI labelled cca.kubevirt.io/enabled needs the "
    "kubevirt-cca plugin container (integration mode plugin) or its hook sidecar (integration "
    "mode sidecar), running the install's hookImage, and neither is there: "
    "kubevirt-cca's pod webhook did not run, or the VMI's hook entry is not ours. The pod is "
    "refused rather than run the VM as a plain VM. Ask the cluster admin whether the "
    "kubevirt-cca webhooks are installed (kubevirt-cca doctor)"
)

# One error line of `kubectl create` per refused object (kubectl words it differently when the
# input holds a single object).
_ERROR = re.compile(
    r'^(?:Error from server \(\w+\): error when creating "STDIN": \S+|The \S+) '
    r'"(?P<name>[^"]+)" is (?:invalid|forbidden): (?P<message>.*)$'
)
_CREATED = re.compile(r"^\S+/(?P<name>\S+) created \(server dry run\)$")


def denied(policy: str, message: str) -> str:
    """A policy's refusal as kubectl prints it after the object's name."""
    return f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: {message}"


def dry_run(
    installed: Installed,
    objects: list[dict[str, Any]],
    *,
    namespace: str | None = None,
    kubeconfig: Path | None = None,
) -> dict[str, str]:
    """``kubectl create --dry-run=server`` of all ``objects`` at once: name -> "" when admitted,
    else the refusal as kubectl prints it after ``... is invalid:`` / ``is forbidden:``."""
    ns = [f"--namespace={namespace}"] if namespace else []
    # JSON, not YAML: kubectl reads YAML 1.1, where an unquoted y is a boolean.
    listed = {"apiVersion": "v1", "kind": "List", "items": objects}
    done = installed.server.kubectl(
        "create",
        "--dry-run=server",
        *ns,
        "-f",
        "-",
        stdin=json.dumps(listed),
        kubeconfig=kubeconfig,
        check=False,
    )
    verdicts: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if match := _CREATED.match(line):
            verdicts[match["name"]] = ""
    for line in done.stderr.splitlines():
        if match := _ERROR.match(line):
            verdicts[match["name"]] = match["message"].removeprefix(": ")
    names = [o["metadata"]["name"] for o in objects]
    assert sorted(verdicts) == sorted(names), f"{done.stdout}\n{done.stderr}"
    return verdicts


def wait_until(check: Any, what: str, timeout: float = 20) -> None:
    """The API server applies policy, binding and parameter changes a moment after they land."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.25)


def install_object(installed: Installed, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in installed.objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return copy.deepcopy(found[0])


@pytest.fixture(scope="module")
def alone(installed: Installed) -> Iterator[Installed]:
    """The webhook configurations deleted for this module: the policies alone decide."""
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        installed.server.kubectl("delete", kind, "kubevirt-cca")
    try:
        yield installed
    finally:
        installed.reapply_webhook_configurations()


@pytest.fixture(scope="module")
def hook_image(installed: Installed) -> str:
    image: str = install_object(installed, "ConfigMap", CONFIG)["data"]["hookImage"]
    return image


def ours(image: str) -> dict[str, Any]:
    """The hook entry exactly as the mutating webhook writes it."""
    return {"image": image, "args": ["hook", "--dialect", "vep"]}


def realm_vmi(
    name: str,
    image: str,
    *,
    entries: Any = None,
    annotations: dict[str, str] | None = None,
    selector: bool = True,
) -> dict[str, Any]:
    """A labelled VMI carrying what the webhook would have added: the node selector and our
    hook entry (``entries`` instead: a list, raw text, or False for no annotation)."""
    written: dict[str, str] = {}
    if isinstance(entries, str):
        written[HOOKS] = entries
    elif entries is not False:
        written[HOOKS] = json.dumps([ours(image)] if entries is None else entries)
    obj = vmi(name, annotations={**written, **(annotations or {})})
    if selector:
        obj["spec"]["nodeSelector"] = {"kubevirt.io/cca": "true"}
    return obj


# --- kubevirt-cca-keys-in-place ----------------------------------------------------------------

KINDS = {
    "vmi": "VirtualMachineInstance",
    "vm": "VirtualMachine",
    "rs": "VirtualMachineInstanceReplicaSet",
    "pool": "VirtualMachinePool",
}
TEMPLATE_FIELD = {
    "vmi": "metadata",
    "vm": "spec.template.metadata",
    "rs": "spec.template.metadata",
    "pool": "spec.virtualMachineTemplate.spec.template.metadata",
}


def placed(
    kind: str,
    image: str,
    *,
    template: dict[str, dict[str, str]] | None = None,
    own: dict[str, dict[str, str]] | None = None,
    pool_vm: dict[str, dict[str, str]] | None = None,
    name: str,
) -> dict[str, Any]:
    """An object of ``kind`` with metadata in the VMI template, on its own metadata, or on a
    pool's ``spec.virtualMachineTemplate.metadata``."""
    template = template or {}
    labels = dict(template.get("labels", {}))
    annotations = dict(template.get("annotations", {}))
    if kind == "vmi":
        obj = (
            realm_vmi(name, image, annotations=annotations)
            if labels.get(ENABLED) == "true"
            else vmi(name, cca=False, annotations=annotations or None)
        )
        obj["metadata"].setdefault("labels", {}).update(labels)
        return obj
    inner = vmi("x", cca=False)
    inner["metadata"] = {"labels": labels, "annotations": annotations}
    inner.pop("apiVersion")
    inner.pop("kind")
    obj = {"vm": vm, "rs": replica_set, "pool": pool}[kind](name, inner)
    for section, values in (own or {}).items():
        obj["metadata"].setdefault(section, {}).update(values)
    for section, values in (pool_vm or {}).items():
        obj["spec"]["virtualMachineTemplate"]["metadata"].setdefault(section, {}).update(values)
    return obj


LABEL = {"labels": {ENABLED: "true"}}
# (case, kinds, {template, own, pool_vm}, field, key, explanation); the explanation None is
# NEVER_READ + the VMI template's field of that section.
PLACEMENT_CASES: list[tuple[str, tuple[str, ...], dict[str, Any], str, str, str | None]] = [
    ("label-own", ("vm", "rs", "pool"), {"own": LABEL}, "metadata.labels", ENABLED, None),
    (
        "params-own",
        ("vm", "rs", "pool"),
        {"template": LABEL, "own": {"annotations": {PARAMS_KEY: PARAMS}}},
        "metadata.annotations",
        PARAMS_KEY,
        None,
    ),
    (
        "label-pool-vm",
        ("pool",),
        {"pool_vm": LABEL},
        "spec.virtualMachineTemplate.metadata.labels",
        ENABLED,
        None,
    ),
    (
        "params-pool-vm",
        ("pool",),
        {"template": LABEL, "pool_vm": {"annotations": {PARAMS_KEY: PARAMS}}},
        "spec.virtualMachineTemplate.metadata.annotations",
        PARAMS_KEY,
        None,
    ),
    (
        "label-casing",
        tuple(KINDS),
        {"template": {"labels": {"cca.kubevirt.io/Enabled": "true"}}},
        "labels",
        "cca.kubevirt.io/Enabled",
        LABEL_HERE,
    ),
    (
        "label-upper",
        tuple(KINDS),
        {"template": {"labels": {"cca.kubevirt.io/ENABLED": "true"}}},
        "labels",
        "cca.kubevirt.io/ENABLED",
        LABEL_HERE,
    ),
    (
        "camel-case",
        tuple(KINDS),
        {"template": {**LABEL, "annotations": {"cca.kubevirt.io/launchSecurity": PARAMS}}},
        "annotations",
        "cca.kubevirt.io/launchSecurity",
        ANNOTATION_HERE,
    ),
    (
        "prefix-casing",
        tuple(KINDS),
        {"template": {"annotations": {"CCA.kubevirt.io/enabled": "true"}}},
        "annotations",
        "CCA.kubevirt.io/enabled",
        ANNOTATION_HERE,
    ),
    (
        "typo",
        tuple(KINDS),
        {"template": {"labels": {"cca.kubevirt.io/enable": "true"}}},
        "labels",
        "cca.kubevirt.io/enable",
        LABEL_HERE,
    ),
    (
        "node-label",
        tuple(KINDS),
        {"template": {"labels": {"cca.kubevirt.io/measurement-algo-sha256": "true"}}},
        "labels",
        "cca.kubevirt.io/measurement-algo-sha256",
        LABEL_HERE,
    ),
    (
        "label-as-annotation",
        tuple(KINDS),
        {"template": {"annotations": {ENABLED: "true"}}},
        "annotations",
        ENABLED,
        ANNOTATION_HERE,
    ),
    (
        "annotation-as-label",
        tuple(KINDS),
        {"template": {"labels": {ENABLED: "true", PARAMS_KEY: "sha256"}}},
        "labels",
        PARAMS_KEY,
        LABEL_HERE,
    ),
    (
        "resolved-unlabelled",
        tuple(KINDS),
        {"template": {"annotations": {RESOLVED: "{}"}}},
        "annotations",
        RESOLVED,
        ANNOTATION_HERE,
    ),
    (
        "integration-unlabelled",
        tuple(KINDS),
        {"template": {"annotations": {INTEGRATION: "plugin"}}},
        "annotations",
        INTEGRATION,
        ANNOTATION_HERE,
    ),
]


def _expected(kind: str, field: str, key: str, explanation: str | None) -> str:
    if explanation is None:
        section = field.rsplit(".", 1)[1]
        return f"{field}[{key}]: {NEVER_READ}{TEMPLATE_FIELD[kind]}.{section}"
    return f"{TEMPLATE_FIELD[kind]}.{field}[{key}]: {explanation}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_keys_in_place_refuses_every_misplaced_key(
    alone: Installed, namespace: str, hook_image: str, kind: str
) -> None:
    objects, expected = [], {}
    for case, kinds, where, field, key, explanation in PLACEMENT_CASES:
        if kind not in kinds:
            continue
        name = f"{kind}-{case}"
        objects.append(placed(kind, hook_image, name=name, **where))
        expected[name] = denied(KEYS_IN_PLACE, _expected(kind, field, key, explanation))
    # In place: the label and the parameters in the VMI template, our resolved record and
    # integration annotation beside the label, keys merely containing our prefix elsewhere.
    good = {
        "labels": {ENABLED: "true", "app": "cca"},
        "annotations": {
            PARAMS_KEY: PARAMS,
            RESOLVED: "{}",
            INTEGRATION: "plugin",
            "example.com/cca.kubevirt.io": "x",
        },
    }
    objects.append(placed(kind, hook_image, name=f"{kind}-in-place", template=good))
    expected[f"{kind}-in-place"] = ""
    objects.append(placed(kind, hook_image, name=f"{kind}-plain"))
    expected[f"{kind}-plain"] = ""
    assert dry_run(alone, objects, namespace=namespace) == expected


def test_keys_in_place_names_every_stray_key_at_once(
    alone: Installed, namespace: str, hook_image: str
) -> None:
    obj = placed(
        "vm", hook_image, name="two", own={"labels": {ENABLED: "true", "cca.kubevirt.io/x": "y"}}
    )
    # The keys come in the order the API server walks the map, which is not fixed.
    keys = ("cca.kubevirt.io/x", ENABLED)
    assert dry_run(alone, [obj], namespace=namespace)["two"] in [
        denied(
            KEYS_IN_PLACE,
            f"metadata.labels[{first}], [{second}]: {NEVER_READ}spec.template.metadata.labels",
        )
        for first, second in (keys, keys[::-1])
    ]


def _binding_enforced(installed: Installed, namespace: str, image: str) -> bool:
    probe = placed("vm", image, name="probe", own=LABEL)
    return dry_run(installed, [probe], namespace=namespace)["probe"] != ""


def test_keys_in_place_lets_old_keys_through_an_update_and_refuses_new_ones(
    alone: Installed, namespace: str, hook_image: str
) -> None:
    server = alone.server
    binding = install_object(alone, "ValidatingAdmissionPolicyBinding", KEYS_IN_PLACE)
    # A VM created with a stray key before kubevirt-cca was installed (no binding yet).
    server.kubectl("delete", "validatingadmissionpolicybinding", KEYS_IN_PLACE)
    try:
        wait_until(lambda: not _binding_enforced(alone, namespace, hook_image), "binding deleted")
        old = placed(
            "vm",
            hook_image,
            name="old",
            own=LABEL,
            template={"labels": {"cca.kubevirt.io/Enabled": "true"}},
        )
        server.create(old, namespace=namespace)
    finally:
        server.create(binding)
    wait_until(lambda: _binding_enforced(alone, namespace, hook_image), "binding enforced")
    kubectl = server.kubectl
    # Updates that keep the old keys go through (KubeVirt's own status/metadata updates too).
    assert kubectl("label", "vm", "old", "-n", namespace, "team=a").returncode == 0
    assert (
        kubectl(
            "patch",
            "vm",
            "old",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec": {"runStrategy": "Always"}}',
        ).returncode
        == 0
    )
    # Adding a key is refused, naming only the new one.
    added = kubectl("annotate", "vm", "old", "-n", namespace, f"{PARAMS_KEY}={PARAMS}", check=False)
    assert added.returncode != 0
    assert added.stderr.strip() == (
        'The virtualmachines "old" is invalid: : '
        + denied(
            KEYS_IN_PLACE,
            f"metadata.annotations[{PARAMS_KEY}]: {NEVER_READ}spec.template.metadata.annotations",
        )
    )
    template = kubectl(
        "patch",
        "vm",
        "old",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"template": {"metadata": {"labels": {"cca.kubevirt.io/typo": "x"}}}}}),
        check=False,
    )
    assert template.returncode != 0
    assert (
        denied(KEYS_IN_PLACE, "spec.template.metadata.labels[cca.kubevirt.io/typo]: " + LABEL_HERE)
        in template.stderr
    )
    got = server.get("vm", "old", namespace=namespace)
    assert PARAMS_KEY not in (got["metadata"].get("annotations") or {})
    assert got["metadata"]["labels"][ENABLED] == "true"


# --- kubevirt-cca-vmi-needs-hook ----------------------------------------------------------------


def test_vmi_needs_our_exact_hook_entry_with_the_pinned_image(
    alone: Installed, namespace: str, hook_image: str
) -> None:
    entry = ours(hook_image)
    user = {"image": "user/sidecar:1", "args": ["--x"]}
    admitted = {
        "ours": [entry],
        "other-spacing": json.dumps([entry], indent=2),
        "only-hook-arg": [{"image": hook_image, "args": ["hook"]}],
    }
    decoys = {
        # Issue 21: no other sidecar beside ours, before or after it.
        "after-a-users-sidecar": [user, entry],
        "before-a-users-sidecar": [entry, user],
        "twice-ours": [entry, entry],
        "after-a-script-sidecar": [{"args": ["--version", "v1alpha2"], "configMap": {}}, entry],
        "another-image": [{**entry, "image": "attacker/hook:1"}],
        "another-image-args-hook": [{"image": "attacker/hook:1", "args": ["hook"]}],
        "nested-under-a-field": [{**user, "x": [entry]}],
        "nested-in-an-object": [{**user, "wrapped": entry}],
        "extra-member": [{**entry, "command": ["/bin/sh"]}],
        "not-last": [entry, user],
        "image-as-prefix": [{**entry, "image": hook_image + "-evil"}],
        "dots-as-wildcards": [{**entry, "image": hook_image.replace(".", "X")}],
        "args-not-first": [{"image": hook_image, "args": ["--x", "hook"]}],
        "empty-list": [],
    }
    objects = [
        realm_vmi(name, hook_image, entries=entries)
        for name, entries in {**admitted, **decoys}.items()
    ]
    objects.append(realm_vmi("no-annotation", hook_image, entries=False))
    objects.append(realm_vmi("no-selector", hook_image, selector=False))
    # The plugin-mode annotation stands in for the entry (the launcher pod policy checks the
    # container); integrationMode is auto in the install.
    objects.append(
        realm_vmi("plugin-mode", hook_image, entries=False, annotations={INTEGRATION: "plugin"})
    )
    expected = {
        **dict.fromkeys(admitted, ""),
        **dict.fromkeys([*decoys, "no-annotation"], denied(NEEDS_HOOK, HOOK_REFUSAL)),
        "no-selector": denied(NEEDS_HOOK, NODE_SELECTOR_REFUSAL),
        "plugin-mode": "",
    }
    assert dry_run(alone, objects, namespace=namespace) == expected


def test_an_update_of_a_cca_vmis_sidecar_list_is_refused(
    alone: Installed, namespace: str, hook_image: str
) -> None:
    """Issue 21: KubeVirt reads the list when it creates the launcher pod, which may come after
    an update; an entry appended then would run beside ours. The policy alone refuses it."""
    server = alone.server
    server.create(realm_vmi("stored", hook_image), namespace=namespace)
    for entries in ([ours(hook_image), {"image": "user/strip:1"}], []):
        patched = server.kubectl(
            "patch",
            "vmi",
            "stored",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            json.dumps({"metadata": {"annotations": {HOOKS: json.dumps(entries)}}}),
            check=False,
        )
        assert patched.returncode != 0, entries
        assert denied(NEEDS_HOOK, UPDATE_REFUSAL) in patched.stderr, patched.stderr
    got = server.get("vmi", "stored", namespace=namespace)
    assert json.loads(got["metadata"]["annotations"][HOOKS]) == [ours(hook_image)]
    # Any other update goes through.
    server.kubectl("label", "vmi", "stored", "-n", namespace, "team=blue")


@pytest.fixture
def config_restored(alone: Installed) -> Iterator[dict[str, Any]]:
    """kubevirt-cca-config as installed, put back after the test deleted it."""
    config = install_object(alone, "ConfigMap", CONFIG)
    try:
        yield config
    finally:
        alone.server.kubectl(
            "delete", "configmap", CONFIG, "-n", INSTALL_NAMESPACE, "--ignore-not-found"
        )
        alone.server.create(config)


def _probes(hook_image: str) -> list[dict[str, Any]]:
    return [realm_vmi("probe", hook_image), launcher_pod("pod", hook_image)]


def test_the_policies_do_not_read_the_config_map(
    alone: Installed, namespace: str, hook_image: str, config_restored: dict[str, Any]
) -> None:
    """Issue 21 item 6: no paramRef, so the policies decide the same with the ConfigMap gone
    (kube-apiserver 1.36 could lose sight of a parameter ConfigMap: kubernetes#133827)."""
    server = alone.server
    server.kubectl("create", "serviceaccount", "default", "-n", namespace)
    assert dry_run(alone, _probes(hook_image), namespace=namespace) == {"probe": "", "pod": ""}
    server.kubectl("delete", "configmap", CONFIG, "-n", INSTALL_NAMESPACE)
    for _ in range(4):  # a moment for the API server to notice, if it were to
        assert dry_run(alone, _probes(hook_image), namespace=namespace) == {
            "probe": "",
            "pod": "",
        }
        time.sleep(0.5)


def _policies_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] in RENDERED_POLICIES
    ]


@pytest.fixture
def policies_restored(alone: Installed) -> Iterator[None]:
    try:
        yield
    finally:
        listed = {"apiVersion": "v1", "kind": "List", "items": _policies_of(alone.objects)}
        alone.server.kubectl("replace", "-f", "-", stdin=json.dumps(listed))


def test_a_changed_hook_image_is_enforced_once_the_install_is_rendered_and_applied_again(
    alone: Installed, namespace: str, hook_image: str, policies_restored: None
) -> None:
    """docs/admin.md: hookImage and integrationMode are rendered into the policies, so changing
    them means `kubevirt-cca manifests` with the new values, applied again."""
    server = alone.server
    server.kubectl("create", "serviceaccount", "default", "-n", namespace)
    moved = "registry.example/kubevirt-cca:2.0"
    printed = kubevirt_cca(
        "manifests",
        "--image",
        moved,
        "--virt-launcher-image",
        LAUNCHER,
        "--integration-mode",
        "sidecar",
        "--output",
        "json",
    )
    assert printed.returncode == 0, printed.stderr
    policies = _policies_of(json.loads(printed.stdout)["items"])
    assert len(policies) == 2
    listed = {"apiVersion": "v1", "kind": "List", "items": policies}
    server.kubectl("replace", "-f", "-", stdin=json.dumps(listed))
    probe = realm_vmi("probe", hook_image)
    wait_until(
        lambda: dry_run(alone, [probe], namespace=namespace)["probe"] != "",
        "the re-rendered policy in force",
    )
    objects = [
        probe,
        realm_vmi("new-image", moved),
        # integrationMode sidecar: the plugin-mode annotation and container no longer count.
        realm_vmi("plugin-mode", moved, entries=False, annotations={INTEGRATION: "plugin"}),
        launcher_pod("pod-old-image", hook_image),
        launcher_pod("pod-new-image", moved),
        launcher_pod("pod-plugin", moved, container="kubevirt-cca-plugin"),
    ]
    hook, pod = denied(NEEDS_HOOK, HOOK_REFUSAL), denied(LAUNCHER_POD, POD_REFUSAL)
    assert dry_run(alone, objects, namespace=namespace) == {
        "probe": hook,
        "new-image": "",
        "plugin-mode": hook,
        "pod-old-image": pod,
        "pod-new-image": "",
        "pod-plugin": pod,
    }


def test_uninstall_and_reinstall_admit_a_cca_vmi_again(
    alone: Installed, namespace: str, hook_image: str
) -> None:
    """Issue 21 item 6 (kubernetes#133827): with parameters, a reinstall left every CCA VMI
    refused with "no params found" until the API server restarted. The install objects are
    deleted and created again (not the Namespace, which no controller here can finalise, nor
    the ServiceAccounts, whose tokens the session's webhook process holds; the webhook
    configurations stay deleted, as in this whole module)."""
    server = alone.server
    server.kubectl("create", "serviceaccount", "default", "-n", namespace)
    kept = ("Namespace", "ServiceAccount", "MutatingWebhookConfiguration")
    objects = [
        o
        for o in alone.objects
        if o["kind"] not in kept and o["kind"] != "ValidatingWebhookConfiguration"
    ]
    assert {"ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= {
        o["kind"] for o in objects
    }
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    # (A test before may have replaced the policies and put them back a moment ago.)
    wait_until(
        lambda: (
            dry_run(alone, _probes(hook_image), namespace=namespace) == {"probe": "", "pod": ""}
        ),
        "the install's policies in force",
    )
    server.kubectl("delete", "-f", "-", "--wait=false", stdin=listed)
    # Uninstalled: nothing pins a hook any more, so a labelled VMI without one is admitted.
    bare = realm_vmi("bare", hook_image, entries=False)
    wait_until(
        lambda: dry_run(alone, [bare], namespace=namespace)["bare"] == "", "the policies gone"
    )
    server.kubectl("create", "-f", "-", stdin=listed)
    wait_until(
        lambda: dry_run(alone, [bare], namespace=namespace)["bare"] != "",
        "the reinstalled policies in force",
    )
    assert dry_run(alone, [*_probes(hook_image), bare], namespace=namespace) == {
        "probe": "",
        "pod": "",
        "bare": denied(NEEDS_HOOK, HOOK_REFUSAL),
    }


# --- kubevirt-cca-launcher-pod-needs-plugin ------------------------------------------------------


def launcher_pod(
    name: str, image: str, *, container: str = "hook-sidecar-0", args: list[str] | None = None
) -> dict[str, Any]:
    """A virt-launcher pod as KubeVirt renders it for a CCA VMI (compute + our container)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"kubevirt.io": "virt-launcher", ENABLED: "true"}},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {"name": "compute", "image": "quay.io/kubevirt/virt-launcher:v1.9.0"},
                {"name": container, "image": image, "args": args or ["hook", "--dialect", "vep"]},
            ],
        },
    }


def second_sidecar(
    pod_name: str, pod: dict[str, Any], *, name: str = "hook-sidecar-1"
) -> dict[str, Any]:
    """``pod`` renamed, with the owner's hook sidecar beside ours."""
    pod["metadata"]["name"] = pod_name
    pod["spec"]["containers"].append({"name": name, "image": "user/strip:1", "args": ["-v"]})
    return pod


def test_launcher_pod_needs_our_container_with_the_pinned_image(
    alone: Installed, namespace: str, hook_image: str
) -> None:
    alone.server.kubectl("create", "serviceaccount", "default", "-n", namespace)
    plain = launcher_pod("plain", "attacker/hook:1")
    plain["metadata"]["labels"].pop(ENABLED)
    objects = [
        launcher_pod("sidecar", hook_image),
        launcher_pod("plugin", hook_image, container="kubevirt-cca-plugin"),
        launcher_pod("sidecar-1", hook_image, container="hook-sidecar-1"),
        launcher_pod("other-image", "attacker/hook:1"),
        launcher_pod("other-image-plugin", "attacker/hook:1", container="kubevirt-cca-plugin"),
        launcher_pod("image-prefix", hook_image + "-evil"),
        launcher_pod("not-hook", hook_image, args=["sh"]),
        launcher_pod("other-name", hook_image, container="helper"),
        plain,
        # Issue 21: a second hook sidecar beside ours; beside the plugin container it is fine.
        second_sidecar("two-sidecars", launcher_pod("x", hook_image)),
        second_sidecar(
            "plugin-and-sidecar",
            launcher_pod("x", hook_image, container="kubevirt-cca-plugin"),
            name="hook-sidecar-0",
        ),
    ]
    refused = denied(LAUNCHER_POD, POD_REFUSAL)
    assert dry_run(alone, objects, namespace=namespace) == {
        "two-sidecars": denied(LAUNCHER_POD, SECOND_SIDECAR_REFUSAL),
        "plugin-and-sidecar": "",
        "sidecar": "",
        "plugin": "",
        "sidecar-1": "",
        "other-image": refused,
        "other-image-plugin": refused,
        "image-prefix": refused,
        "not-hook": refused,
        "other-name": refused,
        "plain": "",
    }


# --- the labeller's policies, with a ServiceAccount token bound to its Node ----------------------

WRITABLE = (
    "kubevirt.io/cca",
    "cca.kubevirt.io/measurement-algo-sha256",
    "cca.kubevirt.io/measurement-algo-sha384",
    "cca.kubevirt.io/measurement-algo-sha512",
    "cca.kubevirt.io/personalization-value",
    "cca.kubevirt.io/measurement-log",
    "cca.kubevirt.io/rme-guest-measurement-algo-sha256",
    "cca.kubevirt.io/rme-guest-measurement-algo-sha384",
    "cca.kubevirt.io/rme-guest-measurement-algo-sha512",
    "cca.kubevirt.io/rme-guest-personalization-value",
    "cca.kubevirt.io/rme-guest-measurement-log",
)
FOREIGN_LABELS = (
    "kubevirt-cca-labeller may only change the labels " + ", ".join(WRITABLE) + ", not: "
)


def labeller(installed: Installed, node: str, folder: Path) -> Path:
    token = installed.sa_token("kubevirt-cca-labeller", node=node)
    return installed.server.token_kubeconfig(folder / f"labeller-{node}", token)


def refusal(done: Any) -> str:
    assert done.returncode != 0, done.stdout
    return str(done.stderr)


def test_labeller_sets_only_its_writable_keys_and_only_removes_stale_ones(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    server = installed.server
    own = labeller(installed, node_name, tmp_path)
    # Every writable key can be set (and removed) by the labeller.
    assert (
        server.kubectl(
            "label", "node", node_name, *(f"{k}=true" for k in WRITABLE), kubeconfig=own
        ).returncode
        == 0
    )
    assert (
        server.kubectl(
            "label", "node", node_name, *(f"{k}-" for k in WRITABLE[1:]), kubeconfig=own
        ).returncode
        == 0
    )
    # Keys under its prefixes that it does not write: never settable ...
    for key in (
        "cca.kubevirt.io/measurement-algo-md5",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha1",
        "cca.kubevirt.io/enabled",
        "cca.kubevirt.io/personalization-value-x",
    ):
        done = server.kubectl(
            "label", "node", node_name, f"{key}=true", kubeconfig=own, check=False
        )
        assert (
            f'Error from server (Forbidden): nodes "{node_name}" is forbidden: '
            + denied(NODE_RESTRICTION, FOREIGN_LABELS + key)
        ) in refusal(done)
    # ... but stale ones (an older version's, here written by the admin) are removable, and a
    # foreign key without our prefixes is not.
    stale = (
        "cca.kubevirt.io/measurement-algo-md5",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha1",
    )
    server.kubectl(
        "label", "node", node_name, *(f"{k}=true" for k in stale), "team.example.com/owner=me"
    )
    changed = server.kubectl(
        "label", "node", node_name, "--overwrite", f"{stale[0]}=false", kubeconfig=own, check=False
    )
    assert denied(NODE_RESTRICTION, FOREIGN_LABELS + stale[0]) in refusal(changed)
    foreign = server.kubectl(
        "label", "node", node_name, "team.example.com/owner-", kubeconfig=own, check=False
    )
    assert denied(NODE_RESTRICTION, FOREIGN_LABELS + "team.example.com/owner") in refusal(foreign)
    assert (
        server.kubectl(
            "label", "node", node_name, *(f"{k}-" for k in stale), kubeconfig=own
        ).returncode
        == 0
    )
    labels = server.get("node", node_name)["metadata"]["labels"]
    assert not set(stale) & set(labels)
    assert labels["team.example.com/owner"] == "me"
    assert labels["kubevirt.io/cca"] == "true"


def event(
    name: str,
    node: str,
    *,
    reason: str = "CCACapable",
    component: str | None = "kubevirt-cca-labeller",
    source: str | None = None,
    kind: str = "Node",
    namespace: str = "default",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": kind, "name": node},
        "reason": reason,
        "message": "m",
        "type": "Normal",
    }
    if component is not None:
        obj["reportingComponent"] = component
        obj["reportingInstance"] = node
    if source is not None:
        obj["source"] = {"component": source, "host": node}
    return obj


def test_labeller_events_only_in_default_about_its_node_with_its_reasons(
    installed: Installed, node_name: str, namespace: str, tmp_path: Path
) -> None:
    own = labeller(installed, node_name, tmp_path)
    other = f"{node_name}-other"
    mine = (
        "kubevirt-cca-labeller on node " + node_name + " may only record Events about its own Node"
    )
    reasons = (
        "kubevirt-cca-labeller's Events have the reasons 'CCACapable', 'CCANotCapable', "
        "'CCAAlgorithmsChanged', 'CCAParametersChanged' only"
    )
    component = (
        "kubevirt-cca-labeller's Events are reported as kubevirt-cca-labeller "
        "(reportingComponent and source.component)"
    )
    objects = [
        event("as-the-labeller-sends", node_name, source="kubevirt-cca-labeller"),
        *(
            event(f"reason-{r.lower()}", node_name, reason=r)
            for r in ("CCANotCapable", "CCAAlgorithmsChanged", "CCAParametersChanged")
        ),
        event("other-node", other),
        event("about-a-pod", node_name, kind="Pod"),
        event("other-reason", node_name, reason="NodeNotReady"),
        event("other-component", node_name, component="kubelet"),
        event("other-source", node_name, component=None, source="kubelet"),
        event("other-source-ours-reporting", node_name, source="kubelet"),
    ]
    refused = {
        "other-node": mine,
        "about-a-pod": mine,
        "other-reason": reasons,
        "other-component": component,
        "other-source": component,
        "other-source-ours-reporting": component,
    }
    verdicts = dry_run(installed, objects, kubeconfig=own)
    assert verdicts == {
        o["metadata"]["name"]: (
            denied(EVENTS, refused[o["metadata"]["name"]])
            if o["metadata"]["name"] in refused
            else ""
        )
        for o in objects
    }
    # Another namespace: RBAC refuses before the policy (which refuses it as well).
    elsewhere = event("elsewhere", node_name, namespace=namespace)
    done = installed.server.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        kubeconfig=own,
        stdin=json.dumps(elsewhere),
        check=False,
    )
    assert (
        'User "system:serviceaccount:kubevirt-cca:kubevirt-cca-labeller" cannot create '
        f'resource "events" in API group "" in the namespace "{namespace}"'
    ) in refusal(done)
