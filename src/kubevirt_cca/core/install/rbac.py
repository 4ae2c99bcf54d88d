"""Least-privilege RBAC: one ServiceAccount per component, only the verbs its code uses.

``tests/install/test_rbac.py`` runs each component against a Kubernetes API emulator, records
every (verb, resource) it asks for, and checks these rules grant exactly that.
"""

from __future__ import annotations

from typing import Any

from kubevirt_cca.constants import CONFIG_MAP_NAME, KUBEVIRT_VMI_CRD
from kubevirt_cca.core.install.names import (
    CERTIFICATE_CONFIG_MAP,
    CERTS,
    DOCTOR,
    SELF_SIGNED,
    TLS_SECRET,
    WEBHOOK,
    WEBHOOK_CONFIGURATION,
    InstallOptions,
    Manifest,
    metadata,
)

RBAC = "rbac.authorization.k8s.io/v1"
ADMISSION_GROUP = "admissionregistration.k8s.io"


def rule(
    group: str, resources: list[str], verbs: list[str], resource_names: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    if resource_names:
        out["resourceNames"] = resource_names
    return out


def service_account(name: str, *, component: str, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name, component=component, namespace=namespace),
    }


def cluster_role(name: str, *, component: str, rules: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": metadata(name, component=component),
        "rules": rules,
    }


def role(name: str, *, component: str, namespace: str, rules: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": metadata(name, component=component, namespace=namespace),
        "rules": rules,
    }


def binding(
    name: str,
    *,
    component: str,
    role_kind: str,
    subject_namespace: str,
    namespace: str | None = None,
) -> Manifest:
    """A (Cluster)RoleBinding of the role ``name`` to the service account ``name``."""
    kind = "RoleBinding" if role_kind == "Role" else "ClusterRoleBinding"
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": metadata(name, component=component, namespace=namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": subject_namespace}],
    }


def webhook_rbac(options: InstallOptions) -> list[Manifest]:
    """The webhook watches CCA VMIs (and fetches the one a migration names when it is not in its
    cache), the KubeVirt CR (gates), KubeVirt's Plugin objects and kubevirt-cca-config.

    Nothing else, in either certificate mode: it reads its certificate from the mounted Secret
    and writes nothing (a compromised webhook cannot re-point the webhook configurations or
    create Secrets). In self-signed mode :func:`certs_rbac` is the identity that does.
    """
    ns = options.namespace
    cluster_rules = [
        rule("kubevirt.io", ["virtualmachineinstances"], ["get", "list", "watch"]),
        # KubeVirt Plugins decide the integration mode (docs/plugins.md).
        rule("plugin.kubevirt.io", ["plugins"], ["list", "watch"]),
        # CCA nodes' labels: warn when no node honours a requested parameter.
        rule("", ["nodes"], ["list", "watch"]),
    ]
    # Listed and watched with the field selector metadata.name, so RBAC can name the one.
    own_rules = [rule("", ["configmaps"], ["list", "watch"], [CONFIG_MAP_NAME])]
    return [
        service_account(WEBHOOK, component="webhook", namespace=ns),
        cluster_role(WEBHOOK, component="webhook", rules=cluster_rules),
        binding(WEBHOOK, component="webhook", role_kind="ClusterRole", subject_namespace=ns),
        role(WEBHOOK, component="webhook", namespace=ns, rules=own_rules),
        binding(WEBHOOK, component="webhook", role_kind="Role", subject_namespace=ns, namespace=ns),
        role(
            WEBHOOK,
            component="webhook",
            namespace=options.kubevirt_namespace,
            rules=[rule("kubevirt.io", ["kubevirts"], ["list", "watch"])],
        ),
        binding(
            WEBHOOK,
            component="webhook",
            role_kind="Role",
            subject_namespace=ns,
            namespace=options.kubevirt_namespace,
        ),
    ]


def certs_rbac(options: InstallOptions) -> list[Manifest]:
    """Self-signed mode: what ``certs ensure`` (the certificate Job and CronJob) uses: its one
    Secret, the ``caBundle`` of the two webhook configurations (``certs_policy.py`` narrows both
    to that) and the ConfigMap of the public certificate. Empty with cert-manager."""
    if options.certificates != SELF_SIGNED:
        return []
    ns = options.namespace
    return [
        service_account(CERTS, component="certs", namespace=ns),
        cluster_role(
            CERTS,
            component="certs",
            rules=[
                rule(
                    ADMISSION_GROUP,
                    ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
                    ["get", "patch"],
                    [WEBHOOK_CONFIGURATION],
                )
            ],
        ),
        binding(CERTS, component="certs", role_kind="ClusterRole", subject_namespace=ns),
        role(
            CERTS,
            component="certs",
            namespace=ns,
            rules=[
                rule("", ["secrets"], ["get", "patch"], [TLS_SECRET]),
                # create cannot be limited by name: the API server knows no name before the
                # object. The policy kubevirt-cca-certs-secret-name refuses every other name.
                rule("", ["secrets"], ["create"]),
                # The public certificate, for doctor; the install creates the ConfigMap.
                rule("", ["configmaps"], ["get", "patch"], [CERTIFICATE_CONFIG_MAP]),
            ],
        ),
        binding(CERTS, component="certs", role_kind="Role", subject_namespace=ns, namespace=ns),
    ]


def doctor_rules() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cluster-wide rules, rules in the install namespace) that ``doctor`` needs: reads only."""
    cluster = [
        rule("kubevirt.io", ["kubevirts"], ["list"]),
        rule("plugin.kubevirt.io", ["plugins"], ["list"]),
        rule("", ["nodes"], ["list"]),
        # Whether KubeVirt's own VMI schema knows CCA (docs/admin.md, the hand-over).
        rule("apiextensions.k8s.io", ["customresourcedefinitions"], ["get"], [KUBEVIRT_VMI_CRD]),
        rule(
            ADMISSION_GROUP,
            [
                "mutatingwebhookconfigurations",
                "validatingwebhookconfigurations",
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
            ],
            ["get"],
        ),
    ]
    namespaced = [
        # kubevirt-cca-config, the Service, and (self-signed) the public certificate; no
        # Secret: doctor needs no private key (docs/admin.md, "Who may run doctor").
        rule("", ["configmaps", "services"], ["get"]),
        # cert-manager: the signed certificate is in its CertificateRequest's status.
        rule("cert-manager.io", ["certificaterequests"], ["list"]),
        rule("", ["pods"], ["list"]),
        rule("apps", ["daemonsets", "deployments"], ["get"]),
        rule("discovery.k8s.io", ["endpointslices"], ["list"]),
    ]
    return cluster, namespaced


def doctor_rbac(options: InstallOptions) -> list[Manifest]:
    """Read-only roles for ``kubevirt-cca doctor``; not bound: bind them to whoever runs it.

    Cluster admins need nothing; docs/admin.md shows the two bindings for anyone else.
    """
    cluster, namespaced = doctor_rules()
    return [
        cluster_role(DOCTOR, component="doctor", rules=cluster),
        role(DOCTOR, component="doctor", namespace=options.namespace, rules=namespaced),
    ]
