"""The certificate identity (self-signed mode) on the real API server: it does its job, and no more.

``kubevirt-cca certs ensure`` runs as the ServiceAccount ``kubevirt-cca-certs`` with a token
the API server issued, against the install as ``kubevirt-cca manifests --certificates
self-signed`` prints it. It makes its Secret and sets every ``caBundle``; the same identity
cannot re-point a webhook, loosen its failure policy, selectors or rules, drop or add a
webhook, touch the configurations' metadata, create or delete a configuration (even when RBAC
is widened to allow it: the policy ``kubevirt-cca-certs-ca-bundle-only`` still refuses), or
create a Secret of another name (``kubevirt-cca-certs-secret-name``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.apiserver.cluster import kubevirt_cca
from tests.peers.apiserver.conftest import INSTALL_NAMESPACE, Installed

pytestmark = pytest.mark.peers

CERTS = "kubevirt-cca-certs"
SECRET = "kubevirt-cca-webhook-tls"
CA_BUNDLE_ONLY = "kubevirt-cca-certs-ca-bundle-only"
SECRET_NAME = "kubevirt-cca-certs-secret-name"
KINDS = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")


def denied(policy: str, message: str) -> str:
    return f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: {message}"


@pytest.fixture
def certs(installed: Installed, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig for the certs identity; afterwards the webhook configurations are as the
    test installed them again (``certs ensure`` points their caBundle at its own CA), and the
    Secret and the public certificate it wrote are gone."""
    token = installed.sa_token(CERTS)
    try:
        yield installed.server.token_kubeconfig(tmp_path / "certs.kubeconfig", token)
    finally:
        installed.undo_certs_ensure()


def without_ca_bundles(configuration: dict[str, Any]) -> list[dict[str, Any]]:
    hooks = []
    for hook in configuration["webhooks"]:
        client = {k: v for k, v in hook["clientConfig"].items() if k != "caBundle"}
        hooks.append({**hook, "clientConfig": client})
    return hooks


def test_certs_ensure_as_its_service_account_sets_the_ca_bundle_and_nothing_else(
    installed: Installed, certs: Path
) -> None:
    server = installed.server
    before = {kind: server.get(kind, "kubevirt-cca") for kind in KINDS}
    done = kubevirt_cca(
        "certs", "ensure", "--kubeconfig", str(certs), "--namespace", INSTALL_NAMESPACE,
        env=server.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1, done.stdout
    assert done.stdout.startswith(f"certificate {INSTALL_NAMESPACE}/{SECRET}: new CA issued, ")
    assert "(no certificate yet), caBundle set on " in done.stdout
    secret = server.get("secret", SECRET, namespace=INSTALL_NAMESPACE)
    assert secret["type"] == "kubernetes.io/tls"
    bundle = secret["data"]["ca.crt"]
    assert base64.b64decode(bundle).startswith(b"-----BEGIN CERTIFICATE-----")
    for kind in KINDS:
        after = server.get(kind, "kubevirt-cca")
        assert {h["clientConfig"]["caBundle"] for h in after["webhooks"]} == {bundle}
        assert without_ca_bundles(after) == without_ca_bundles(before[kind])
        assert after["metadata"].get("labels") == before[kind]["metadata"].get("labels")
    # The public half for doctor, in the ConfigMap the install created empty: no key.
    published = server.get(
        "configmap", "kubevirt-cca-webhook-certificate", namespace=INSTALL_NAMESPACE
    )["data"]
    assert published == {
        "tls.crt": base64.b64decode(secret["data"]["tls.crt"]).decode(),
        "ca.crt": base64.b64decode(bundle).decode(),
    }
    # Run again: nothing to change, and the policy lets the no-op through.
    again = kubevirt_cca(
        "certs", "ensure", "--kubeconfig", str(certs), "--namespace", INSTALL_NAMESPACE,
        env=server.env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    line = f"certificate {INSTALL_NAMESPACE}/{SECRET}: unchanged, valid until "
    assert again.stdout.startswith(line) and again.stdout.endswith(" (valid)\n"), again.stdout


def patch_as(installed: Installed, kubeconfig: Path, kind: str, patch: list[dict[str, Any]]) -> str:
    """A JSON patch of our configuration as ``kubeconfig``'s user: "" when applied, else the
    API server's refusal."""
    done = installed.server.kubectl(
        "patch", kind, "kubevirt-cca", "--type=json", "-p", json.dumps(patch),
        kubeconfig=kubeconfig, check=False,
    )  # fmt: skip
    return "" if done.returncode == 0 else done.stderr.strip()


def changed_only(message: str) -> str:
    return denied(
        CA_BUNDLE_ONLY,
        f"{CERTS} may change only clientConfig.caBundle of a webhook; changed: {message}",
    )


@pytest.mark.parametrize(
    ("kind", "patch", "refusal"),
    [
        (
            "mutatingwebhookconfiguration",
            [
                {
                    "op": "replace",
                    "path": "/webhooks/0/clientConfig/url",
                    "value": "https://attacker.example/mutate-vmi",
                }
            ],
            changed_only("mutate-vmi.cca.kubevirt.io (clientConfig)"),
        ),
        (
            "validatingwebhookconfiguration",
            [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}],
            changed_only("validate-vmi.cca.kubevirt.io (failurePolicy)"),
        ),
        (
            "mutatingwebhookconfiguration",
            [
                {
                    "op": "replace",
                    "path": "/webhooks/0/objectSelector",
                    "value": {"matchLabels": {"nothing": "matches"}},
                }
            ],
            changed_only("mutate-vmi.cca.kubevirt.io (objectSelector)"),
        ),
        (
            "validatingwebhookconfiguration",
            [
                {"op": "replace", "path": "/webhooks/0/rules/0/operations", "value": ["DELETE"]},
                {"op": "replace", "path": "/webhooks/1/timeoutSeconds", "value": 1},
            ],
            changed_only(
                "validate-vmi.cca.kubevirt.io (rules); "
                "validate-templates.cca.kubevirt.io (timeoutSeconds)"
            ),
        ),
        (
            "validatingwebhookconfiguration",
            [{"op": "remove", "path": "/webhooks/0"}],
            denied(
                CA_BUNDLE_ONLY,
                f"{CERTS} may not add, remove, rename or reorder webhooks: they were "
                "[validate-vmi.cca.kubevirt.io, validate-templates.cca.kubevirt.io, "
                "validate-migration.cca.kubevirt.io, validate-plugin.cca.kubevirt.io, "
                "validate-kubevirt.cca.kubevirt.io], the update has "
                "[validate-templates.cca.kubevirt.io, validate-migration.cca.kubevirt.io, "
                "validate-plugin.cca.kubevirt.io, validate-kubevirt.cca.kubevirt.io]",
            ),
        ),
        (
            "mutatingwebhookconfiguration",
            [{"op": "add", "path": "/metadata/labels/extra", "value": "x"}],
            denied(
                CA_BUNDLE_ONLY,
                f"{CERTS} may not change a webhook configuration's metadata: labels",
            ),
        ),
    ],
    ids=["url", "failurePolicy", "objectSelector", "rules+timeout", "remove-webhook", "label"],
)
def test_the_certs_identity_may_not_change_anything_but_the_ca_bundle(
    installed: Installed, certs: Path, kind: str, patch: list[dict[str, Any]], refusal: str
) -> None:
    before = installed.server.get(kind, "kubevirt-cca")
    assert refusal in patch_as(installed, certs, kind, patch)
    after = installed.server.get(kind, "kubevirt-cca")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_the_certs_identity_may_set_a_ca_bundle(installed: Installed, certs: Path) -> None:
    """The control for the refusals above: the same identity, the one field it owns."""
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    kind = "validatingwebhookconfiguration"
    patch = [{"op": "replace", "path": "/webhooks/2/clientConfig/caBundle", "value": bundle}]
    assert patch_as(installed, certs, kind, patch) == ""
    hooks = installed.server.get(kind, "kubevirt-cca")["webhooks"]
    assert hooks[2]["clientConfig"]["caBundle"] == bundle


@pytest.fixture
def widened(installed: Installed) -> Iterator[None]:
    """RBAC widened by mistake: the certs identity may create and delete any configuration."""
    name = "test-certs-widened"
    rules = {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        "verbs": ["create", "delete"],
    }
    installed.server.create(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name}, "rules": [rules]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": CERTS, "namespace": INSTALL_NAMESPACE}]},
    )  # fmt: skip
    try:
        yield
    finally:
        installed.server.kubectl("delete", "clusterrolebinding,clusterrole", name)


def test_the_policy_refuses_create_and_delete_even_when_rbac_allows_them(
    installed: Installed, certs: Path, widened: None
) -> None:
    server = installed.server
    deleted = server.kubectl(
        "delete", "validatingwebhookconfiguration", "kubevirt-cca", kubeconfig=certs, check=False
    )
    assert deleted.returncode != 0
    assert (
        denied(
            CA_BUNDLE_ONLY,
            f"{CERTS} may only update the caBundle of a webhook configuration, not delete one",
        )
        in deleted.stderr
    )
    server.get("validatingwebhookconfiguration", "kubevirt-cca")  # still there
    created = server.create(
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "certs-made-this"},
         "webhooks": []},
        kubeconfig=certs, check=False,
    )  # fmt: skip
    assert created.returncode != 0
    assert (
        denied(
            CA_BUNDLE_ONLY,
            f"{CERTS} may only update the caBundle of a webhook configuration, not create one",
        )
        in created.stderr
    )


def test_the_certs_identity_may_create_no_secret_but_its_own(
    installed: Installed, certs: Path
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "not-the-webhook-tls", "namespace": INSTALL_NAMESPACE},
        "stringData": {"token": "x"},
    }
    done = installed.server.create(secret, kubeconfig=certs, check=False)
    assert done.returncode != 0
    assert (
        denied(
            SECRET_NAME,
            f"{CERTS} may only write the Secret {INSTALL_NAMESPACE}/{SECRET}, not "
            f"{INSTALL_NAMESPACE}/not-the-webhook-tls",
        )
        in done.stderr
    )
    listed = installed.server.kubectl("get", "secrets", "-n", INSTALL_NAMESPACE, "-o", "name")
    assert "secret/not-the-webhook-tls" not in listed.stdout
