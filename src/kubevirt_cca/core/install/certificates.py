"""The webhook's serving certificate from cert-manager (the default install).

A self-signed Issuer makes a CA, a CA Issuer signs the serving certificate from it, and
cert-manager's CA injector copies the CA into both webhook configurations (the
``cert-manager.io/inject-ca-from`` annotation). The CA outlives the serving certificate, so a
renewal changes no ``caBundle`` and old and new webhook pods are trusted alike.
Without cert-manager, ``kubevirt-cca certs ensure`` does the same job (docs/install.md).
"""

from __future__ import annotations

from kubevirt_cca.core.install.names import (
    CA_CERTIFICATE,
    CA_ISSUER,
    CA_SECRET,
    CERT_MANAGER,
    SELFSIGNED_ISSUER,
    TLS_SECRET,
    WEBHOOK_CERTIFICATE,
    InstallOptions,
    Manifest,
    metadata,
    service_dns_names,
)

CERT_MANAGER_API = "cert-manager.io/v1"
CA_DURATION = "87600h"  # 10 years
SERVING_DURATION = "2160h"  # 90 days
SERVING_RENEW_BEFORE = "720h"  # 30 days


def certificate_objects(options: InstallOptions) -> list[Manifest]:
    """cert-manager Issuers and Certificates; none in self-signed mode."""
    if options.certificates != CERT_MANAGER:
        return []
    ns = options.namespace

    def meta(name: str) -> dict[str, object]:
        return metadata(name, component="webhook", namespace=ns)

    return [
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": meta(SELFSIGNED_ISSUER),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Certificate",
            "metadata": meta(CA_CERTIFICATE),
            "spec": {
                "isCA": True,
                "commonName": "kubevirt-cca webhook CA",
                "secretName": CA_SECRET,
                "duration": CA_DURATION,
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {
                    "name": SELFSIGNED_ISSUER,
                    "kind": "Issuer",
                    "group": "cert-manager.io",
                },
            },
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": meta(CA_ISSUER),
            "spec": {"ca": {"secretName": CA_SECRET}},
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Certificate",
            "metadata": meta(WEBHOOK_CERTIFICATE),
            "spec": {
                "secretName": TLS_SECRET,
                "dnsNames": service_dns_names(options),
                "duration": SERVING_DURATION,
                "renewBefore": SERVING_RENEW_BEFORE,
                "usages": ["server auth", "digital signature", "key encipherment"],
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "issuerRef": {"name": CA_ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
            },
        },
    ]
