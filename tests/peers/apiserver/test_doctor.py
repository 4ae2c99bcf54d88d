"""``kubevirt-cca doctor`` against the real API server: each check's line, ready and broken."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.peers.apiserver.cluster import kubevirt_cca
from tests.peers.apiserver.conftest import Installed

pytestmark = pytest.mark.peers


def doctor(installed: Installed) -> dict[str, dict[str, Any]]:
    done = kubevirt_cca(
        "doctor",
        "--kubeconfig",
        str(installed.server.kubeconfig),
        "--output",
        "json",
        env=installed.server.env,
    )
    assert done.returncode in (0, 1), done.stderr
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def set_gates(installed: Installed, gates: list[str]) -> None:
    """Merge-patch the feature gates of KubeVirt's own CR (kubevirt/kubevirt)."""
    patch = {"spec": {"configuration": {"developerConfiguration": {"featureGates": gates}}}}
    installed.server.kubectl(
        "patch", "kubevirt", "kubevirt", "-n", "kubevirt", "--type=merge", "-p", json.dumps(patch)
    )


def test_doctor_line_by_line(installed: Installed) -> None:
    """What doctor can truthfully see here: KubeVirt's CR, the gates, policies, webhooks."""
    checks = doctor(installed)
    assert checks["feature gates"]["status"] == "ok"
    assert checks["feature gates"]["summary"] == "WorkloadEncryptionCCA and Sidecar are on"
    assert checks["integration mode"]["summary"] == (
        "sidecar (auto: KubeVirt's Plugins gate is off)"
    )
    assert checks["admission policies"]["status"] == "ok"
    assert checks["admission policies"]["summary"] == "16 policies and bindings present"
    # No virt-operator runs: the CR has no status.
    assert checks["KubeVirt"]["status"] == "warn"
    assert checks["KubeVirt"]["summary"] == (
        "KubeVirt unknown version (no phase), KubeVirt CR kubevirt/kubevirt"
    )
    # The test-side change (url: instead of the Service) is named as such, one line per webhook.
    hooks = checks["webhook configurations"]
    assert hooks["status"] == "fail"
    # Every other field as rendered: the API server's defaults (matchPolicy, scope,
    # namespaceSelector, timeoutSeconds, reinvocationPolicy, port) are no difference.
    assert len(hooks["details"]) == 7
    assert all(": calls URL https://127.0.0.1:" in d for d in hooks["details"]), hooks
    port = installed.webhook.port
    assert (
        f"mutate-vmi.cca.kubevirt.io: calls URL https://127.0.0.1:{port}/mutate-vmi, not "
        "Service kubevirt-cca/kubevirt-cca-webhook path /mutate-vmi (doctor checks only the "
        "Service the install creates)"
    ) in hooks["details"]
    # No kubelet: no webhook pod is ever ready, and the self-signed Secret was never written.
    assert checks["webhook service"]["summary"] == (
        "no ready webhook pod behind Service kubevirt-cca/kubevirt-cca-webhook: CCA VMIs cannot "
        "be created"
    )
    assert checks["webhook certificate"]["summary"] == (
        "Secret kubevirt-cca/kubevirt-cca-webhook-tls is missing"
    )


def test_doctor_sees_a_gate_turned_off(installed: Installed) -> None:
    set_gates(installed, ["Sidecar"])
    try:
        gates = doctor(installed)["feature gates"]
    finally:
        set_gates(installed, ["WorkloadEncryptionCCA", "Sidecar"])
    assert gates["status"] == "fail"
    assert "WorkloadEncryptionCCA" in gates["summary"]


def test_doctor_sees_a_policy_missing(installed: Installed) -> None:
    server = installed.server
    name = "kubevirt-cca-labeller-node-restriction"
    policy = next(
        o
        for o in installed.objects
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] == name
    )
    server.kubectl("delete", "validatingadmissionpolicy", name)
    try:
        policies = doctor(installed)["admission policies"]
    finally:
        server.create(policy)
    assert policies["status"] == "fail"
    assert name in json.dumps(policies)


def test_doctor_reports_labels_the_nodes_do_not_support(installed: Installed) -> None:
    server = installed.server
    amd64 = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "doctor-x86",
            "labels": {"kubernetes.io/arch": "amd64", "kubevirt.io/cca": "true"},
        },
    }
    report = {
        "capable": False,
        "measurementAlgorithms": [],
        "reasons": ["no /dev/kvm"],
        "evidence": {},
        "checkedAt": "2026-12-01T00:00:00Z",
    }
    denied = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "doctor-arm",
            "labels": {"kubernetes.io/arch": "arm64", "kubevirt.io/cca": "true"},
            "annotations": {"cca.kubevirt.io/detection": json.dumps(report)},
        },
    }
    server.create(amd64, denied)
    try:
        nodes = doctor(installed)["CCA-capable nodes"]
    finally:
        server.kubectl("delete", "node", "doctor-x86", "doctor-arm")
    assert nodes["status"] == "fail"
    assert "doctor-arm, doctor-x86" in nodes["summary"]
    assert (
        "doctor-x86: labelled kubevirt.io/cca=true but it is amd64 (kubernetes.io/arch): "
        "Realms need an arm64 host"
    ) in nodes["details"]
    assert (
        "doctor-arm: labelled kubevirt.io/cca=true but its own detection report says not "
        "capable (no /dev/kvm)"
    ) in nodes["details"]


def test_a_decoy_kubevirt_cr_does_not_change_doctors_answer(installed: Installed) -> None:
    """KubeVirt's own CR has the CCA gate off; a decoy in another namespace turns it on."""
    from tests.peers.apiserver.conftest import kubevirt_cr

    server = installed.server
    server.kubectl("create", "namespace", "decoy")
    server.create(
        kubevirt_cr(["WorkloadEncryptionCCA", "Sidecar"], name="decoy", namespace="decoy")
    )
    set_gates(installed, ["Sidecar"])
    try:
        checks = doctor(installed)
    finally:
        set_gates(installed, ["WorkloadEncryptionCCA", "Sidecar"])
        server.kubectl("delete", "kubevirt", "decoy", "-n", "decoy")
    assert checks["feature gates"]["status"] == "fail"
    assert "WorkloadEncryptionCCA" in checks["feature gates"]["summary"]
    assert "KubeVirt CR kubevirt/kubevirt" in checks["KubeVirt"]["summary"]
    assert any("decoy/decoy is ignored" in d for d in checks["KubeVirt"]["details"]), checks[
        "KubeVirt"
    ]


def test_doctor_reports_every_tampered_webhook_field(installed: Installed) -> None:
    """Issue 21, item 5: each changed field of a stored configuration is one line."""
    server = installed.server
    mutating = [
        {"op": "replace", "path": "/webhooks/0/timeoutSeconds", "value": 30},
        {"op": "replace", "path": "/webhooks/0/reinvocationPolicy", "value": "Never"},
        {"op": "add", "path": "/webhooks/0/matchConditions",
         "value": [{"name": "never", "expression": "false"}]},
    ]  # fmt: skip
    validating = [
        {"op": "replace", "path": "/webhooks/0/namespaceSelector",
         "value": {"matchLabels": {"team": "a"}}},
        {"op": "replace", "path": "/webhooks/0/rules/0/operations", "value": ["CREATE"]},
        {"op": "replace", "path": "/webhooks/0/matchPolicy", "value": "Exact"},
        {"op": "replace", "path": "/webhooks/2/sideEffects", "value": "NoneOnDryRun"},
        {"op": "replace", "path": "/webhooks/2/admissionReviewVersions",
         "value": ["v1", "v1beta1"]},
        {"op": "replace", "path": "/webhooks/1/name", "value": "extra.example.com"},
    ]  # fmt: skip
    try:
        for kind, patch in (
            ("mutatingwebhookconfiguration", mutating),
            ("validatingwebhookconfiguration", validating),
        ):
            server.kubectl("patch", kind, "kubevirt-cca", "--type=json", "-p", json.dumps(patch))
        hooks = doctor(installed)["webhook configurations"]
    finally:
        installed.reapply_webhook_configurations()
    assert hooks["status"] == "fail"
    lines = [d for d in hooks["details"] if ": calls URL " not in d]
    assert lines == [
        "mutate-vmi.cca.kubevirt.io: matchConditions is "
        '[{"expression":"false","name":"never"}], expected []',
        "mutate-vmi.cca.kubevirt.io: timeoutSeconds is 30, expected 10",
        'mutate-vmi.cca.kubevirt.io: reinvocationPolicy is "Never", expected "IfNeeded"',
        "validate-vmi.cca.kubevirt.io: rules is "
        '[{"apiGroups":["kubevirt.io"],"apiVersions":["v1"],"operations":["CREATE"],'
        '"resources":["virtualmachineinstances"],"scope":"Namespaced"}], expected '
        '[{"apiGroups":["kubevirt.io"],"apiVersions":["v1"],"operations":["CREATE","UPDATE"],'
        '"resources":["virtualmachineinstances"],"scope":"Namespaced"}]',
        'validate-vmi.cca.kubevirt.io: namespaceSelector is {"matchLabels":{"team":"a"}}, '
        "expected {}",
        'validate-vmi.cca.kubevirt.io: matchPolicy is "Exact", expected "Equivalent"',
        "ValidatingWebhookConfiguration kubevirt-cca has no webhook "
        "validate-templates.cca.kubevirt.io",
        'validate-migration.cca.kubevirt.io: sideEffects is "NoneOnDryRun", expected "None"',
        'validate-migration.cca.kubevirt.io: admissionReviewVersions is ["v1","v1beta1"], '
        'expected ["v1"]',
        "ValidatingWebhookConfiguration kubevirt-cca has a webhook extra.example.com that "
        "kubevirt-cca does not ship: the API server calls it for the same objects; delete it "
        "(another product's webhook belongs in a configuration of its own)",
    ]
    # Put back as installed: clean again (but for the test's URLs).
    again = doctor(installed)["webhook configurations"]
    assert all(": calls URL " in d for d in again["details"]), again
