"""``kubevirt-cca doctor`` against the real API server: each check's line, ready and broken."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.apiserver.cluster import ApiServer, kubevirt_cca, start, stop
from tests.peers.apiserver.conftest import IMAGE, INSTALL_NAMESPACE, LAUNCHER, Installed

pytestmark = pytest.mark.peers

CERTS = "kubevirt-cca-certs"
SECRET = "kubevirt-cca-webhook-tls"


def doctor(installed: Installed, *, kubeconfig: Path | None = None) -> dict[str, dict[str, Any]]:
    done = kubevirt_cca(
        "doctor",
        "--kubeconfig",
        str(kubeconfig or installed.server.kubeconfig),
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
    assert checks["feature gates"]["status"] == "pass"
    assert checks["feature gates"]["message"] == "WorkloadEncryptionCCA and Sidecar are on"
    assert checks["integration mode"]["message"] == (
        "sidecar (auto: KubeVirt's Plugins gate is off)"
    )
    assert checks["admission policies"]["status"] == "pass"
    assert checks["admission policies"]["message"] == "16 policies and bindings present"
    # No virt-operator runs: the CR has no status.
    assert checks["KubeVirt"]["status"] == "warn"
    assert checks["KubeVirt"]["message"] == (
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
    # No kubelet: no webhook pod is ever ready, and the certificate Job never ran (its
    # ConfigMap for the public certificate is as the install made it: empty).
    assert checks["webhook service"]["message"] == (
        "no ready webhook pod behind Service kubevirt-cca/kubevirt-cca-webhook: CCA VMIs cannot "
        "be created"
    )
    assert checks["webhook certificate"]["message"] == (
        "ConfigMap kubevirt-cca/kubevirt-cca-webhook-certificate holds no tls.crt yet"
    )


def test_doctor_sees_a_gate_turned_off(installed: Installed) -> None:
    set_gates(installed, ["Sidecar"])
    try:
        gates = doctor(installed)["feature gates"]
    finally:
        set_gates(installed, ["WorkloadEncryptionCCA", "Sidecar"])
    assert gates["status"] == "fail"
    assert "WorkloadEncryptionCCA" in gates["message"]


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
    assert "doctor-arm, doctor-x86" in nodes["message"]
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
    assert "WorkloadEncryptionCCA" in checks["feature gates"]["message"]
    assert "KubeVirt CR kubevirt/kubevirt" in checks["KubeVirt"]["message"]
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
        {"op": "remove", "path": "/webhooks/1/objectSelector/matchExpressions/1"},
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
        "mutate-launcher-pod.cca.kubevirt.io: objectSelector is "
        '{"matchExpressions":[{"key":"cca.kubevirt.io/enabled","operator":"Exists"}]}, expected '
        '{"matchExpressions":[{"key":"cca.kubevirt.io/enabled","operator":"Exists"},'
        '{"key":"kubevirt.io","operator":"In","values":["virt-launcher"]}]}',
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


@pytest.fixture
def doctor_account(installed: Installed, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig for a ServiceAccount bound to the install's two doctor roles, as
    docs/admin.md ("Who may run doctor") binds them for a user."""
    server = installed.server
    name = "doctor-user"
    server.kubectl("create", "serviceaccount", name, "-n", INSTALL_NAMESPACE)
    subject = f"--serviceaccount={INSTALL_NAMESPACE}:{name}"
    server.kubectl(
        "create", "clusterrolebinding", name, "--clusterrole=kubevirt-cca-doctor", subject
    )
    server.kubectl(
        "create", "rolebinding", name, "-n", INSTALL_NAMESPACE, "--role=kubevirt-cca-doctor",
        subject,
    )  # fmt: skip
    try:
        yield server.token_kubeconfig(tmp_path / "doctor.kubeconfig", installed.sa_token(name))
    finally:
        server.kubectl("delete", "clusterrolebinding", name)
        server.kubectl("delete", "rolebinding,serviceaccount", name, "-n", INSTALL_NAMESPACE)


def test_doctor_with_the_doctor_roles_reads_no_secret_and_reports_everything(
    installed: Installed, doctor_account: Path, tmp_path: Path
) -> None:
    """Issue 21, item 4: the certificate is checked from its public half; the roles grant no
    Secret. ``certs ensure`` runs first (as its own identity), so there is a certificate."""
    server = installed.server
    certs = server.token_kubeconfig(tmp_path / "certs.kubeconfig", installed.sa_token(CERTS))
    try:
        made = kubevirt_cca(
            "certs", "ensure", "--kubeconfig", str(certs), "--namespace", INSTALL_NAMESPACE,
            env=server.env,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        as_doctor = doctor(installed, kubeconfig=doctor_account)
        as_admin = doctor(installed)
        secret = server.kubectl(
            "get", "secret", SECRET, "-n", INSTALL_NAMESPACE, "-o", "json",
            kubeconfig=doctor_account, check=False,
        )  # fmt: skip
        listed = server.kubectl(
            "get", "secrets", "-n", INSTALL_NAMESPACE, kubeconfig=doctor_account, check=False
        )
    finally:
        installed.undo_certs_ensure()
    # Nothing the doctor roles lack: every check reads what it needs, as an admin's run does.
    assert as_doctor == as_admin
    assert not [c for c in as_doctor.values() if c["message"].startswith("cannot read")]
    certificate = as_doctor["webhook certificate"]
    assert certificate["status"] == "pass", certificate
    assert certificate["message"].endswith("days), trusted by both configurations")
    # ... and the Secret with tls.key and ca.key stays out of reach.
    assert secret.returncode != 0
    assert "Forbidden" in secret.stderr and 'cannot get resource "secrets"' in secret.stderr
    assert listed.returncode != 0 and "Forbidden" in listed.stderr


# cert-manager does not run here; its CertificateRequest kind is served from a CRD of the same
# group, version and names (the fields doctor reads are cert-manager's: the annotations
# cert-manager.io/certificate-name and -revision, status.certificate):
# tests/doctor/cluster.py's CERTIFICATE_REQUEST_CRD, the one kmock serves too.


@pytest.fixture
def cert_manager_issued(installed: Installed) -> Iterator[None]:
    """The install as cert-manager leaves it: CA injected into every webhook, and two signed
    CertificateRequests (revision 1 from a CA since replaced, revision 2 current)."""
    from tests.doctor.cluster import CERTIFICATE_REQUEST_CRD, make_ca, make_serving, pem64

    server = installed.server
    server.create(CERTIFICATE_REQUEST_CRD)
    ca, old_ca = make_ca("cert-manager CA"), make_ca("the CA before")
    try:
        server.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/certificaterequests.cert-manager.io",
        )  # fmt: skip
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            hooks = server.get(kind, "kubevirt-cca")["webhooks"]
            patch = [
                {"op": "add", "path": "/metadata/annotations",
                 "value": {"cert-manager.io/inject-ca-from": "kubevirt-cca/kubevirt-cca-webhook"}},
                *({"op": "replace", "path": f"/webhooks/{i}/clientConfig/caBundle",
                   "value": pem64(ca[0])} for i in range(len(hooks))),
            ]  # fmt: skip
            server.kubectl("patch", kind, "kubevirt-cca", "--type=json", "-p", json.dumps(patch))
        for revision, signer in ((1, old_ca), (2, ca)):
            name = f"kubevirt-cca-webhook-{revision}"
            server.create(
                {"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                 "metadata": {"name": name, "namespace": INSTALL_NAMESPACE, "annotations": {
                     "cert-manager.io/certificate-name": "kubevirt-cca-webhook",
                     "cert-manager.io/certificate-revision": str(revision)}},
                 "spec": {"request": ""}}
            )  # fmt: skip
            status = {"status": {"certificate": pem64(make_serving(signer))}}
            server.kubectl(
                "patch", "certificaterequest", name, "-n", INSTALL_NAMESPACE,
                "--subresource=status", "--type=merge", "-p", json.dumps(status),
            )  # fmt: skip
        yield
    finally:
        installed.reapply_webhook_configurations()
        server.kubectl("delete", "crd", "certificaterequests.cert-manager.io", "--wait=true")


def test_doctor_with_the_doctor_roles_checks_cert_managers_certificate(
    installed: Installed, doctor_account: Path, cert_manager_issued: None
) -> None:
    """The cert-manager side of item 4: the newest signed CertificateRequest, read with the
    doctor roles (list certificaterequests), is the certificate checked."""
    checks = doctor(installed, kubeconfig=doctor_account)
    certificate = checks["webhook certificate"]
    assert certificate["status"] == "pass", certificate
    assert certificate["message"].endswith("(89 days), trusted by both configurations")
    assert not [c for c in checks.values() if c["message"].startswith("cannot read")]


# Issue 23, item 4: the KubeVirt CR as HCO generates it. HCO does not run here; what doctor
# reads is what it writes on the CR: the labels (app, app.kubernetes.io/managed-by:
# hco-operator, ...) and a controller ownerReference to its HyperConverged.
HCO_METADATA = [
    {"op": "add", "path": "/metadata/labels", "value": {
        "app": "kubevirt-hyperconverged",
        "app.kubernetes.io/managed-by": "hco-operator",
        "app.kubernetes.io/part-of": "hyperconverged-cluster",
        "app.kubernetes.io/component": "compute"}},
    {"op": "add", "path": "/metadata/ownerReferences", "value": [{
        "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
        "name": "kubevirt-hyperconverged", "uid": "5b0c8e7e-3f4e-4b53-9d1c-0d6a3c1e2f00",
        "controller": True, "blockOwnerDeletion": True}]},
]  # fmt: skip


def test_doctor_on_an_hco_owned_kubevirt_cr_gives_the_jsonpatch_annotation(
    installed: Installed,
) -> None:
    """The annotation's patch, applied by the real API server to the CR (as HCO applies it to
    the CR it generates), turns the gates on: doctor then finds them on."""
    server = installed.server
    server.kubectl(
        "patch", "kubevirt", "kubevirt", "-n", "kubevirt", "--type=json",
        "-p", json.dumps(HCO_METADATA),
    )  # fmt: skip
    set_gates(installed, ["Snapshot"])
    try:
        before = doctor(installed)
        fix = before["feature gates"]["fix"]
        prefix = (
            "kubectl annotate --overwrite -n kubevirt hco kubevirt-hyperconverged "
            "kubevirt.kubevirt.io/jsonpatch='"
        )
        assert fix.startswith(prefix), fix
        operations = fix[len(prefix) : fix.index("' (HCO applies it")]
        server.kubectl(
            "patch", "kubevirt", "kubevirt", "-n", "kubevirt", "--type=json", "-p", operations
        )
        after = doctor(installed)
    finally:
        set_gates(installed, ["WorkloadEncryptionCCA", "Sidecar"])
        server.kubectl(
            "patch", "kubevirt", "kubevirt", "-n", "kubevirt", "--type=json", "-p",
            '[{"op":"remove","path":"/metadata/labels"},'
            '{"op":"remove","path":"/metadata/ownerReferences"}]',
        )  # fmt: skip
    assert before["feature gates"]["status"] == "fail"
    assert "makes the cluster unsupported" in fix
    # (No virt-operator here: the CR is also "not fully deployed", the detail before.)
    assert before["KubeVirt"]["details"][1:] == [
        "managed by the HyperConverged operator: HyperConverged "
        "kubevirt/kubevirt-hyperconverged (ownerReference to HyperConverged "
        "hco.kubevirt.io/v1beta1) reverts edits of this CR; change it through the HyperConverged "
        "CR (docs/install.md, 'On OpenShift / with HCO')"
    ]
    assert after["feature gates"]["status"] == "pass", after["feature gates"]
    assert after["feature gates"]["message"] == "WorkloadEncryptionCCA and Sidecar are on"


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[ApiServer]:
    """A second, fresh API server: no KubeVirt, nothing of kubevirt-cca, no cert-manager."""
    server = start(tmp_path / "empty")
    try:
        yield server
    finally:
        stop(server.run_dir)


def doctor_on(server: ApiServer) -> tuple[int, dict[str, Any]]:
    done = kubevirt_cca(
        "doctor", "--kubeconfig", str(server.kubeconfig), "--output", "json", env=server.env
    )
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def test_doctor_on_an_empty_cluster_is_one_line(empty_server: ApiServer) -> None:
    """Issue 23, item 6: nothing installed is one line (and KubeVirt first: none here)."""
    code, report = doctor_on(empty_server)
    assert code == 1
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("kubevirt-cca", "fail")]
    [check] = report["checks"]
    assert check["message"] == (
        "kubevirt-cca is not installed: no webhook configuration kubevirt-cca, none of its "
        "admission policies, and none of its objects in namespace kubevirt-cca"
    )
    assert check["fix"].startswith("install KubeVirt first (its operator and a KubeVirt CR)")
    assert "--certificates self-signed" in check["fix"]


def test_the_cert_manager_install_without_cert_manager_names_it(
    empty_server: ApiServer,
) -> None:
    """The default install applied as install.md says, on a cluster without cert-manager:
    kubectl creates all but the Issuers and Certificates, and doctor names cert-manager."""
    printed = kubevirt_cca("manifests", "--image", IMAGE, "--virt-launcher-image", LAUNCHER)
    assert printed.returncode == 0, printed.stderr
    applied = empty_server.kubectl("apply", "-f", "-", stdin=printed.stdout, check=False)
    assert applied.returncode != 0
    assert 'no matches for kind "Certificate" in version "cert-manager.io/v1"' in applied.stderr
    code, report = doctor_on(empty_server)
    assert code == 1
    checks = {c["name"]: c for c in report["checks"]}
    hooks, certificate = checks["webhook configurations"], checks["webhook certificate"]
    assert hooks["details"] == [
        "cert-manager is not installed (the API server serves no cert-manager.io/v1 "
        "CertificateRequests), but this install relies on it: its CA injector fills caBundle, "
        "which is empty in 7 webhook(s), so the API server cannot trust the webhook"
    ]
    assert certificate["message"].startswith("cert-manager is not installed")
    for check in (hooks, certificate, checks["webhook service"]):
        assert "kubevirt-cca manifests --certificates self-signed" in check["fix"], check
    assert "re-apply" not in json.dumps(report)
    assert checks["admission policies"]["status"] == "pass"


def test_a_kubeconfig_whose_ca_file_is_gone_is_exit_2(installed: Installed, tmp_path: Path) -> None:
    """The API server's own kubeconfig, copied with its CA path pointing nowhere."""
    text = installed.server.kubeconfig.read_text()
    ca = str(installed.server.ca)
    assert ca in text or "certificate-authority:" in text
    config = tmp_path / "kubeconfig"
    config.write_text(text.replace(ca, str(tmp_path / "gone.crt")))
    done = kubevirt_cca("doctor", "--kubeconfig", str(config), env=installed.server.env)
    assert done.returncode == 2, done
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert f"certificate-authority {tmp_path / 'gone.crt'} does not exist" in done.stderr
