"""A Realm-ready cluster as objects, loaded into kmock's Kubernetes emulator.

``ready_cluster()`` returns every object a ready cluster holds (the install objects plus what
Kubernetes, KubeVirt, cert-manager and the labeller add: endpoints, the certificate Secret, pods,
nodes with their labels). Tests take one thing away or break it, load the rest, and run doctor.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kmock import ResourceInfo

from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.core.doctor import Read, Snapshot
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import service_dns_names

NOW = datetime.now(UTC).replace(microsecond=0)
# Every check doctor runs, in the order it prints them (docs/troubleshooting.md explains each).
CHECK_NAMES = (
    "KubeVirt",
    "feature gates",
    "configuration",
    "integration mode",
    "KubeVirt plugins",
    "webhook configurations",
    "webhook service",
    "webhook certificate",
    "admission policies",
    "node labeller",
    "CCA-capable nodes",
    "CCA parameters",
)
PLURALS = {
    "Namespace": "namespaces",
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Secret": "secrets",
    "Pod": "pods",
    "Node": "nodes",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Deployment": "deployments",
    "DaemonSet": "daemonsets",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "EndpointSlice": "endpointslices",
    "KubeVirt": "kubevirts",
    "Plugin": "plugins",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
    "Issuer": "issuers",
    "Certificate": "certificates",
    "CertificateRequest": "certificaterequests",
    "CustomResourceDefinition": "customresourcedefinitions",
}


def empty_snapshot(**reads: Read) -> Snapshot:
    """A Snapshot taken now in which every read came back empty, but for the reads given."""
    required = [
        f.name
        for f in dataclasses.fields(Snapshot)
        if f.name != "now" and f.default is f.default_factory is dataclasses.MISSING
    ]
    every: dict[str, Any] = {**dict.fromkeys(required, Read()), **reads}
    return Snapshot(now=datetime.now(UTC), **every)


def resource_of(obj: dict[str, Any]) -> str:
    api = obj["apiVersion"]
    return f"{api}/{PLURALS[obj['kind']]}"


def load(kmock: Any, objects: list[dict[str, Any]]) -> None:
    """Put ``objects`` into kmock; a CustomResourceDefinition among them also makes kmock serve
    its kind (an empty list rather than 404 when no object of it is left)."""
    for obj in objects:
        meta = obj["metadata"]
        kmock.objects[resource_of(obj), meta.get("namespace"), meta["name"]] = obj
        if obj["kind"] == "CustomResourceDefinition":
            spec = obj["spec"]
            version = spec["versions"][0]["name"]
            kmock.resources[f"{spec['group']}/{version}/{spec['names']['plural']}"] = ResourceInfo(
                kind=spec["names"]["kind"], namespaced=spec["scope"] == "Namespaced"
            )


# What cert-manager installs for the one kind doctor lists (its other CRDs are not read). The
# same object serves kmock and the real API server (tests/peers/apiserver/test_doctor.py), which
# needs the schema and the status subresource; cert-manager itself runs in neither.
CERTIFICATE_REQUEST_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificaterequests.cert-manager.io"},
    "spec": {
        "group": "cert-manager.io",
        "scope": "Namespaced",
        "names": {
            "plural": "certificaterequests",
            "singular": "certificaterequest",
            "kind": "CertificateRequest",
            "listKind": "CertificateRequestList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(name: str = "test CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_serving(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    valid_for: timedelta = timedelta(days=90),
    dns_names: list[str] | None = None,
) -> x509.Certificate:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    names = dns_names if dns_names is not None else service_dns_names(InstallOptions())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0] if names else "x"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + valid_for)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def pem64(*certs: x509.Certificate) -> str:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    return base64.b64encode(pem).decode()


def node(
    name: str, *, arch: str = "arm64", capable: bool = True, reasons: list[str] | None = None
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/arch": arch}
    report = {
        "capable": capable,
        "measurementAlgorithms": ["sha256"] if capable else [],
        "reasons": reasons or ([] if capable else ["no /dev/kvm"]),
        "evidence": {},
        "checkedAt": NOW.isoformat(),
    }
    if capable:
        labels["kubevirt.io/cca"] = "true"
        labels["cca.kubevirt.io/measurement-algo-sha256"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"cca.kubevirt.io/detection": json.dumps(report)},
        },
        "spec": {},
    }


def labeller_pod(node_name: str, *, ready: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if not ready:
        status["containerStatuses"] = [
            {
                "name": "labeller",
                "ready": False,
                "restartCount": 5,
                "image": "x",
                "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"kubevirt-cca-labeller-{node_name}",
            "namespace": "kubevirt-cca",
            "labels": {
                "app.kubernetes.io/name": "kubevirt-cca",
                "app.kubernetes.io/component": "labeller",
            },
        },
        "spec": {"nodeName": node_name, "containers": [{"name": "labeller"}]},
        "status": status,
    }


def endpoint_slice(ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubevirt-cca-webhook-abcde",
            "namespace": "kubevirt-cca",
            "labels": {"kubernetes.io/service-name": "kubevirt-cca-webhook"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [f"10.0.0.{i + 1}"], "conditions": {"ready": True}} for i in range(ready)
        ],
    }


def kubevirt(
    gates: list[str] | None = None,
    *,
    disabled: list[str] | None = None,
    version: str = "v1.8.0",
    namespace: str = "kubevirt",
) -> dict[str, Any]:
    developer: dict[str, Any] = {
        "featureGates": gates
        if gates is not None
        else ["LiveMigration", "WorkloadEncryptionCCA", "Sidecar"]
    }
    if disabled is not None:
        developer["disabledFeatureGates"] = disabled
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": "kubevirt", "namespace": namespace},
        "spec": {"configuration": {"developerConfiguration": developer}},
        "status": {
            "phase": "Deployed",
            "observedKubeVirtVersion": version,
            "observedKubeVirtRegistry": "quay.io/kubevirt",
        },
    }


def ready_cluster(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    options: InstallOptions | None = None,
) -> list[dict[str, Any]]:
    options = options or InstallOptions()
    objects = copy.deepcopy(install_objects(options, load_policies()))
    bundle = pem64(ca[0])
    for obj in objects:
        if obj["kind"].endswith("WebhookConfiguration"):
            for hook in obj["webhooks"]:
                hook["clientConfig"]["caBundle"] = bundle  # what cert-manager's injector does
    serving = make_serving(ca)
    objects += [
        kubevirt(namespace=options.kubevirt_namespace),
        copy.deepcopy(CERTIFICATE_REQUEST_CRD),
        certificate_request(serving, revision=2),
        # An older revision, signed by the CA the install had before: doctor reads the newest.
        certificate_request(make_serving(make_ca("the CA before")), revision=1),
        endpoint_slice(2),
        node("arm-1"),
        node("arm-2", capable=False, reasons=["libvirt reports cca supported='no'"]),
        node("x86-1", arch="amd64", capable=False),
        labeller_pod("arm-1"),
        labeller_pod("arm-2"),
    ]
    return objects


def certificate_request(serving: x509.Certificate, *, revision: int) -> dict[str, Any]:
    """What cert-manager leaves for the Certificate kubevirt-cca-webhook: a signed request
    (doctor reads the certificate there, not in the Secret with its key)."""
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": f"kubevirt-cca-webhook-{revision}",
            "namespace": "kubevirt-cca",
            "annotations": {
                "cert-manager.io/certificate-name": "kubevirt-cca-webhook",
                "cert-manager.io/certificate-revision": str(revision),
            },
        },
        "spec": {"request": ""},
        "status": {"certificate": pem64(serving)},
    }


def set_serving(objects: list[dict[str, Any]], serving: x509.Certificate) -> None:
    """The newest signed certificate is ``serving`` (cert-manager reissued it)."""
    newest = find(objects, "CertificateRequest", "kubevirt-cca-webhook-2")
    newest["status"]["certificate"] = pem64(serving)


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    )


def drop(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> None:
    objects.remove(find(objects, kind, name))
