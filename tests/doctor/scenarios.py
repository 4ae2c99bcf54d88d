"""Broken clusters for the doctor tests: each function takes one thing away from a ready
cluster (tests/doctor/cluster.py) or breaks it; FAILURES says which check must fail and how it
starts, DETAILS the detail line that names the problem."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.core.install import InstallOptions
from kubevirt_cca.core.install.policy_values import RENDERED_POLICIES, cel_string
from tests.doctor.cluster import (
    drop,
    endpoint_slice,
    find,
    kubevirt,
    labeller_pod,
    make_ca,
    make_serving,
    node,
    ready_cluster,
    set_serving,
)

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
Objects = list[dict[str, Any]]


def replace(objects: Objects, new: dict[str, Any]) -> None:
    old = find(objects, new["kind"], new["metadata"]["name"])
    objects[objects.index(old)] = new


def webhook(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    config = find(objects, kind)
    hook: dict[str, Any] = next(h for h in config["webhooks"] if h["name"] == name)
    return hook


def pin(objects: Objects, **values: str) -> None:
    """The rendered policies as ``kubevirt-cca manifests`` would render them with ``values``."""
    for name in RENDERED_POLICIES:
        policy = find(objects, "ValidatingAdmissionPolicy", name)
        for variable in policy["spec"]["variables"]:
            if variable["name"] in values:
                variable["expression"] = cel_string(values[variable["name"]])


def _hook_image_changed_not_rendered(o: Objects, ca: CA) -> None:
    find(o, "ConfigMap")["data"]["hookImage"] = "registry.example/kubevirt-cca:2.0"


def _no_kubevirt(o: Objects, ca: CA) -> None:
    drop(o, "KubeVirt")


def _kubevirt_elsewhere(o: Objects, ca: CA) -> None:
    cr = kubevirt()
    cr["metadata"]["namespace"] = "openshift-cnv"
    replace(o, cr)


def _cca_gate_disabled(o: Objects, ca: CA) -> None:
    replace(o, kubevirt(disabled=["WorkloadEncryptionCCA"]))


def _sidecar_gate_off(o: Objects, ca: CA) -> None:
    replace(o, kubevirt(["WorkloadEncryptionCCA"]))


def _bad_config(o: Objects, ca: CA) -> None:
    find(o, "ConfigMap")["data"]["dialect"] = "libvirt-12"


def _no_mutating(o: Objects, ca: CA) -> None:
    drop(o, "MutatingWebhookConfiguration")


def _vmi_webhook_ignores_failures(o: Objects, ca: CA) -> None:
    webhook(o, "ValidatingWebhookConfiguration", "validate-vmi.cca.kubevirt.io")[
        "failurePolicy"
    ] = "Ignore"


def _no_object_selector(o: Objects, ca: CA) -> None:
    del webhook(o, "MutatingWebhookConfiguration", "mutate-vmi.cca.kubevirt.io")["objectSelector"]


def _no_ca_bundle(o: Objects, ca: CA) -> None:
    del webhook(o, "MutatingWebhookConfiguration", "mutate-vmi.cca.kubevirt.io")["clientConfig"][
        "caBundle"
    ]


def _wrong_service(o: Objects, ca: CA) -> None:
    webhook(o, "ValidatingWebhookConfiguration", "validate-migration.cca.kubevirt.io")[
        "clientConfig"
    ]["service"]["name"] = "old"


def _no_service(o: Objects, ca: CA) -> None:
    drop(o, "Service")


def _no_ready_pod(o: Objects, ca: CA) -> None:
    replace(o, endpoint_slice(0))


def _not_issued(o: Objects, ca: CA) -> None:
    drop(o, "CertificateRequest", "kubevirt-cca-webhook-2")
    drop(o, "CertificateRequest", "kubevirt-cca-webhook-1")


def _expired(o: Objects, ca: CA) -> None:
    set_serving(o, make_serving(ca, valid_for=-timedelta(hours=1)))


def signed_by_another_ca(o: Objects, ca: CA) -> None:
    set_serving(o, make_serving(make_ca("another CA")))


def _wrong_names(o: Objects, ca: CA) -> None:
    set_serving(o, make_serving(ca, dns_names=["example.com"]))


def _no_policy(o: Objects, ca: CA) -> None:
    drop(o, "ValidatingAdmissionPolicy", "kubevirt-cca-labeller-node-restriction")


def _no_binding(o: Objects, ca: CA) -> None:
    drop(o, "ValidatingAdmissionPolicyBinding", "kubevirt-cca-labeller-node-restriction")


def _no_daemon_set(o: Objects, ca: CA) -> None:
    drop(o, "DaemonSet")


def _labeller_missing_on_a_node(o: Objects, ca: CA) -> None:
    drop(o, "Pod", "kubevirt-cca-labeller-arm-2")


def _labeller_crashing(o: Objects, ca: CA) -> None:
    replace(o, labeller_pod("arm-2", ready=False))


def _no_arm64_nodes(o: Objects, ca: CA) -> None:
    drop(o, "Node", "arm-1")
    drop(o, "Node", "arm-2")


def _no_capable_node(o: Objects, ca: CA) -> None:
    replace(
        o, node("arm-1", capable=False, reasons=["no /dev/kvm", "KVM exposes no RMI capability"])
    )


FAILURES: list[tuple[str, Callable[[Objects, CA], None], str, str]] = [
    (
        "no KubeVirt",
        _no_kubevirt,
        "KubeVirt",
        "KubeVirt is not installed: no KubeVirt object in any namespace",
    ),
    (
        "KubeVirt in another namespace",
        _kubevirt_elsewhere,
        "KubeVirt",
        "KubeVirt v1.8.0 (Deployed), KubeVirt CR openshift-cnv/kubevirt",
    ),
    (
        "CCA gate disabled",
        _cca_gate_disabled,
        "feature gates",
        "off: WorkloadEncryptionCCA (CCA VMIs are refused until both are on)",
    ),
    (
        "Sidecar gate off",
        _sidecar_gate_off,
        "feature gates",
        "off: Sidecar (CCA VMIs are refused until both are on)",
    ),
    (
        "bad ConfigMap",
        _bad_config,
        "configuration",
        "ConfigMap kubevirt-cca-config is invalid: dialect: unknown value 'libvirt-12'; expected "
        "one of vep, openeuler, qemu-commandline",
    ),
    (
        "no mutating configuration",
        _no_mutating,
        "webhook configurations",
        "1 problem(s): CCA VMIs are refused (or not made Realms) until they are fixed",
    ),
    (
        "VMI webhook failurePolicy Ignore",
        _vmi_webhook_ignores_failures,
        "webhook configurations",
        "1 problem(s): ",
    ),
    ("no objectSelector", _no_object_selector, "webhook configurations", "1 problem(s): "),
    ("empty caBundle", _no_ca_bundle, "webhook configurations", "1 problem(s): "),
    ("wrong service", _wrong_service, "webhook configurations", "1 problem(s): "),
    (
        "no Service",
        _no_service,
        "webhook service",
        "Service kubevirt-cca/kubevirt-cca-webhook is missing: the API server has nowhere to send "
        "CCA VMIs",
    ),
    (
        "no ready webhook pod",
        _no_ready_pod,
        "webhook service",
        "no ready webhook pod behind Service kubevirt-cca/kubevirt-cca-webhook: CCA VMIs cannot "
        "be created",
    ),
    (
        "not issued",
        _not_issued,
        "webhook certificate",
        "cert-manager has signed no certificate for Certificate kubevirt-cca-webhook yet "
        "(no CertificateRequest with status.certificate)",
    ),
    (
        "expired",
        _expired,
        "webhook certificate",
        "the API server will refuse the webhook's certificate",
    ),
    (
        "signed by another CA",
        signed_by_another_ca,
        "webhook certificate",
        "the API server will refuse the webhook's certificate",
    ),
    (
        "wrong DNS names",
        _wrong_names,
        "webhook certificate",
        "the API server will refuse the webhook's certificate",
    ),
    ("no labeller policy", _no_policy, "admission policies", "in-API-server policies are"),
    (
        "hookImage changed, install not rendered again",
        _hook_image_changed_not_rendered,
        "admission policies",
        "the policies pin another hook image or mode than kubevirt-cca-config: CCA VMIs that "
        "the webhook admits are refused by the policies",
    ),
    ("no labeller policy binding", _no_binding, "admission policies", "in-API-server policies are"),
    (
        "no DaemonSet",
        _no_daemon_set,
        "node labeller",
        "DaemonSet kubevirt-cca/kubevirt-cca-labeller is missing: no node gets the kubevirt.io/cca "
        "label",
    ),
    (
        "labeller missing on a node",
        _labeller_missing_on_a_node,
        "node labeller",
        "running and ready on 1 of 2 arm64 node(s)",
    ),
    (
        "labeller crashing",
        _labeller_crashing,
        "node labeller",
        "running and ready on 1 of 2 arm64 node(s)",
    ),
    (
        "no arm64 nodes",
        _no_arm64_nodes,
        "node labeller",
        "the cluster has no arm64 node (label kubernetes.io/arch=arm64): Realms need Arm CCA "
        "hardware",
    ),
    (
        "no capable node",
        _no_capable_node,
        "CCA-capable nodes",
        "0 of 2 arm64 node(s) can run Realms",
    ),
]


DETAILS = {
    "hookImage changed, install not rendered again": (
        "ValidatingAdmissionPolicy kubevirt-cca-vmi-needs-hook was rendered with hookImage "
        "'kubevirt-cca:0.1.0', kubevirt-cca-config says 'registry.example/kubevirt-cca:2.0'"
    ),
    "VMI webhook failurePolicy Ignore": "validate-vmi.cca.kubevirt.io: failurePolicy is Ignore; "
    "it must be Fail, or a CCA VMI could start as a plain VM while the webhook is down",
    "no objectSelector": "mutate-vmi.cca.kubevirt.io: objectSelector does not select exactly "
    "the VMIs labelled cca.kubevirt.io/enabled",
    "empty caBundle": "mutate-vmi.cca.kubevirt.io: clientConfig.caBundle is empty, so the API "
    "server cannot trust the webhook's certificate",
    "wrong service": "validate-migration.cca.kubevirt.io: calls service kubevirt-cca/old path "
    "/validate-migration, expected kubevirt-cca/kubevirt-cca-webhook path /validate-migration",
    "KubeVirt in another namespace": "the webhook reads the feature gates from namespace "
    "kubevirt, but the KubeVirt CR is in openshift-cnv: it refuses every CCA VMI",
    "labeller crashing": "arm-2: labeller pod kubevirt-cca-labeller-arm-2 is not ready "
    "(container labeller: CrashLoopBackOff)",
    "labeller missing on a node": "arm-2: no labeller pod",
    "no capable node": "arm-1: no /dev/kvm; KVM exposes no RMI capability",
    "wrong DNS names": "does not name kubevirt-cca-webhook.kubevirt-cca.svc (names: example.com)",
    "no labeller policy binding": "ValidatingAdmissionPolicyBinding "
    "kubevirt-cca-labeller-node-restriction is missing",
}


# OpenShift / HCO: the KubeVirt CR as the HyperConverged operator generates it (its name,
# namespace, labels and controller ownerReference; HCO's constants: hcoutil.AppLabel* and
# OperatorName "hco-operator").
HCO_NAMESPACE = "kubevirt-hyperconverged"


def hco_kubevirt(
    gates: list[str] | None = None,
    *,
    disabled: list[str] | None = None,
    owner_reference: bool = True,
    labels: bool = True,
) -> dict[str, Any]:
    cr = kubevirt(
        ["CPUManager", "Snapshot", "HotplugVolumes"] if gates is None else gates,
        disabled=disabled,
        namespace=HCO_NAMESPACE,
    )
    meta = cr["metadata"]
    meta["name"] = "kubevirt-kubevirt-hyperconverged"
    if labels:
        meta["labels"] = {
            "app": "kubevirt-hyperconverged",
            "app.kubernetes.io/managed-by": "hco-operator",
            "app.kubernetes.io/part-of": "hyperconverged-cluster",
            "app.kubernetes.io/component": "compute",
            "app.kubernetes.io/version": "1.15.0",
        }
    if owner_reference:
        meta["ownerReferences"] = [
            {
                "apiVersion": "hco.kubevirt.io/v1beta1",
                "kind": "HyperConverged",
                "name": "kubevirt-hyperconverged",
                "uid": "5b0c8e7e-3f4e-4b53-9d1c-0d6a3c1e2f00",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return cr


def hco_cluster(ca: CA, kubevirt_cr: dict[str, Any] | None = None) -> Objects:
    """A ready install whose KubeVirt CR HCO owns (installed with --kubevirt-namespace)."""
    objects = ready_cluster(ca, InstallOptions(kubevirt_namespace=HCO_NAMESPACE))
    drop(objects, "KubeVirt")
    return [*objects, kubevirt_cr or hco_kubevirt()]


def nothing_installed(ca: CA) -> Objects:
    """KubeVirt and its nodes, but nothing of kubevirt-cca."""
    return [kubevirt(), node("arm-1"), node("x86-1", arch="amd64", capable=False)]


def without_cert_manager(ca: CA) -> Objects:
    """The default (cert-manager) install applied where cert-manager is not installed: kubectl
    created everything but the Issuers and Certificates (no such kinds), the CA injector never
    ran (every caBundle empty), and no webhook pod starts (no Secret)."""
    objects = [
        o
        for o in ready_cluster(ca)
        if not o["apiVersion"].startswith("cert-manager.io/")
        and o["kind"] != "CustomResourceDefinition"
    ]
    for obj in objects:
        if obj["kind"].endswith("WebhookConfiguration"):
            for hook in obj["webhooks"]:
                del hook["clientConfig"]["caBundle"]
    replace(objects, endpoint_slice(0))
    return objects


# The clusters behind the doctor outputs quoted in docs/ (``<!-- output-of: kubevirt-cca doctor;
# cluster: NAME -->`` before the block; tests/install/test_docs.py runs doctor on each).
DOC_IMAGE = "registry.example/kubevirt-cca:0.1.0"


def doc_ready(ca: CA) -> Objects:
    """install.md's ready cluster: three arm64 nodes, two of them CCA-capable."""
    objects = [
        o
        for o in ready_cluster(ca, InstallOptions(image=DOC_IMAGE))
        if o["kind"] not in ("Node", "Pod")
    ]
    capable = [node("arm-1"), node("arm-2")]
    for each in capable:
        each["metadata"]["labels"]["cca.kubevirt.io/measurement-algo-sha512"] = "true"
    objects += [
        *capable,
        node("arm-3", capable=False, reasons=["libvirt reports cca supported='no'"]),
        *(labeller_pod(name) for name in ("arm-1", "arm-2", "arm-3")),
    ]
    return objects


def doc_gates_off(ca: CA) -> Objects:
    """A KubeVirt CR with LiveMigration on and neither of our gates."""
    objects = doc_ready(ca)
    replace(objects, kubevirt(["LiveMigration"]))
    return objects


def doc_hco_gates_off(ca: CA) -> Objects:
    """HCO's KubeVirt CR, before the annotation: its own gates, not ours."""
    objects = [o for o in hco_cluster(ca) if o["kind"] not in ("Node", "Pod")]
    return objects + [o for o in doc_ready(ca) if o["kind"] in ("Node", "Pod")]


DOC_CLUSTERS: dict[str, Callable[[CA], Objects]] = {
    "ready": doc_ready,
    "gates-off": doc_gates_off,
    "hco-gates-off": doc_hco_gates_off,
    "nothing-installed": nothing_installed,
    "without-cert-manager": without_cert_manager,
}
