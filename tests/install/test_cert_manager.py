"""The cert-manager objects (CRD-backed: no Kubernetes schema covers them).

Checked against a schema written here from cert-manager's v1 API reference for the fields the
install uses (unknown fields refused, Go durations, enums), and against each other: the chain
self-signed Issuer → CA Certificate → CA Issuer → serving Certificate → the Secret the webhook
mounts, for the names the API server calls.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import CA_INJECTION_ANNOTATION
from tests.install.support import find

DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
ISSUER_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
}
KEY_USAGES = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
]
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
}
CERTIFICATE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Certificate"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "issuerRef": ISSUER_REF,
                "isCA": {"type": "boolean"},
                "commonName": {"type": "string", "maxLength": 64},
                "dnsNames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "duration": {"type": "string", "pattern": DURATION},
                "renewBefore": {"type": "string", "pattern": DURATION},
                "usages": {"type": "array", "items": {"enum": KEY_USAGES}},
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    },
                },
            },
        },
    },
}
ISSUER = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Issuer"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {
                "selfSigned": {"type": "object"},
                "ca": {
                    "type": "object",
                    "required": ["secretName"],
                    "properties": {"secretName": {"type": "string"}},
                },
            },
        },
    },
}


def _hours(duration: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(h|m|s)", duration)) / 3600


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return install_objects(InstallOptions(namespace="cca-system"))


def test_the_objects_fit_cert_managers_schema(objects: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            jsonschema.validate(obj, CERTIFICATE if obj["kind"] == "Certificate" else ISSUER)
            checked += 1
    assert checked == 4
    broken = find(objects, "Certificate", "kubevirt-cca-webhook")
    typo = {**broken, "spec": {**broken["spec"], "dnsName": ["x"]}}
    with pytest.raises(jsonschema.ValidationError):  # the schema does refuse a typo
        jsonschema.validate(typo, CERTIFICATE)


def test_the_chain_leads_to_the_secret_the_webhook_mounts(objects: list[dict[str, Any]]) -> None:
    selfsigned = find(objects, "Issuer", "kubevirt-cca-selfsigned")
    ca_certificate = find(objects, "Certificate", "kubevirt-cca-ca")
    ca_issuer = find(objects, "Issuer", "kubevirt-cca-ca")
    serving = find(objects, "Certificate", "kubevirt-cca-webhook")
    assert "selfSigned" in selfsigned["spec"]
    assert ca_certificate["spec"]["isCA"] is True
    assert ca_certificate["spec"]["issuerRef"]["name"] == selfsigned["metadata"]["name"]
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_certificate["spec"]["secretName"]
    assert serving["spec"]["issuerRef"]["name"] == ca_issuer["metadata"]["name"]
    deployment = find(objects, "Deployment", "kubevirt-cca-webhook")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == serving["spec"]["secretName"]
    assert {
        o["metadata"]["namespace"]
        for o in objects
        if o["apiVersion"].startswith("cert-manager.io/")
    } == {"cca-system"}


def test_the_certificate_names_the_service_the_api_server_calls(
    objects: list[dict[str, Any]],
) -> None:
    serving = find(objects, "Certificate", "kubevirt-cca-webhook")
    service = find(objects, "Service", "kubevirt-cca-webhook")
    called = {
        f"{h['clientConfig']['service']['name']}.{h['clientConfig']['service']['namespace']}.svc"
        for o in objects
        if o["kind"].endswith("WebhookConfiguration")
        for h in o["webhooks"]
    }
    assert called == {f"{service['metadata']['name']}.cca-system.svc"}
    assert called <= set(serving["spec"]["dnsNames"])
    assert "server auth" in serving["spec"]["usages"]


def test_renewal_comes_well_before_expiry(objects: list[dict[str, Any]]) -> None:
    serving = find(objects, "Certificate", "kubevirt-cca-webhook")["spec"]
    ca = find(objects, "Certificate", "kubevirt-cca-ca")["spec"]
    assert 0 < _hours(serving["renewBefore"]) < _hours(serving["duration"]) / 2
    assert _hours(ca["duration"]) > 10 * _hours(serving["duration"])


def test_both_webhook_configurations_get_the_ca_injected(objects: list[dict[str, Any]]) -> None:
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = find(objects, kind, "kubevirt-cca")
        assert (
            config["metadata"]["annotations"][CA_INJECTION_ANNOTATION]
            == "cca-system/kubevirt-cca-webhook"
        )
