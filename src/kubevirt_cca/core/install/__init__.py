"""The install objects as data: what ``kubectl apply -k deploy/`` and ``kubevirt-cca manifests``
put into a cluster, built from one set of options.

``deploy/`` is generated from this package (``kubevirt-cca manifests --write-kustomize deploy``),
and a test renders it with ``kubectl kustomize`` and compares it with :func:`install_objects`, so
the two cannot drift. The admission policies in ``deploy/policies/`` are hand-written YAML owned
by the admission code; they come in as ``policies`` (already parsed), so this module stays pure,
and get the install's hook image and integration mode rendered in (``policy_values.py``).

Layout of the objects, by file (the keys of :func:`install_files`)::

    namespace.yaml                     Namespace
    config.yaml                        ConfigMap kubevirt-cca-config (the defaults)
    webhook/rbac.yaml                  ServiceAccount, Roles, ClusterRole, bindings
    webhook/deployment.yaml            Deployment (2 replicas), PodDisruptionBudget
    webhook/service.yaml               Service
    webhook/certificates.yaml          cert-manager Issuers + Certificates (cert-manager mode);
                                       self-signed mode: the certs ServiceAccount, its roles,
                                       the policies that fence it in (caBundle only, its one
                                       Secret), the (empty) ConfigMap for the public
                                       certificate, the certificate Job and renewal CronJob
    webhook/webhook-configurations.yaml Mutating- and ValidatingWebhookConfiguration
    labeller/rbac.yaml                 ServiceAccount, ClusterRole, binding
    labeller/daemonset.yaml            DaemonSet (arm64 nodes)
    labeller/node-restriction.yaml     ValidatingAdmissionPolicy + binding
    doctor/rbac.yaml                   read-only ClusterRole + Role for ``kubevirt-cca doctor``
    monitoring/*.yaml                  with ``monitoring``: PodMonitors, PrometheusRule, the
                                       kube-state-metrics configuration (monitoring.py); a
                                       kustomization of its own, not in deploy/'s
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubevirt_cca.core.install.certificates import certificate_objects
from kubevirt_cca.core.install.certs_policy import certs_restriction
from kubevirt_cca.core.install.labeller_manifests import (
    labeller_daemon_set,
    labeller_node_restriction,
    labeller_rbac,
)
from kubevirt_cca.core.install.monitoring import (
    MONITORING_DIR,
    kube_state_metrics_config,
    pod_monitors,
    prometheus_rule,
)
from kubevirt_cca.core.install.names import (
    CERT_MANAGER,
    SELF_SIGNED,
    CertificateMode,
    InstallOptions,
    Manifest,
)
from kubevirt_cca.core.install.policy_values import render_policy
from kubevirt_cca.core.install.rbac import certs_rbac, doctor_rbac, webhook_rbac
from kubevirt_cca.core.install.webhook_manifests import (
    certificate_config_map,
    certs_jobs,
    config_map,
    namespace,
    webhook_configurations,
    webhook_deployment,
    webhook_service,
)

__all__ = [
    "CERT_MANAGER",
    "MONITORING_DIR",
    "SELF_SIGNED",
    "CertificateMode",
    "InstallOptions",
    "Manifest",
    "install_files",
    "install_objects",
    "object_key",
]

POLICIES_DIR = "policies"


def install_files(
    options: InstallOptions, policies: Mapping[str, Sequence[Manifest]] | None = None
) -> dict[str, list[Manifest]]:
    """The install objects grouped by the file of ``deploy/`` that holds them, in apply order.

    ``policies`` maps a file name under ``deploy/policies/`` to the objects it holds.
    """
    files: dict[str, list[Manifest]] = {
        "namespace.yaml": [namespace(options)],
        "config.yaml": [config_map(options)],
        "webhook/rbac.yaml": webhook_rbac(options),
        "webhook/service.yaml": [webhook_service(options)],
        "webhook/deployment.yaml": webhook_deployment(options),
    }
    certificates = [
        *certificate_objects(options),
        *certs_rbac(options),
        *certs_restriction(options),
        *certificate_config_map(options),
        *certs_jobs(options),
    ]
    if certificates:
        files["webhook/certificates.yaml"] = certificates
    files["labeller/rbac.yaml"] = labeller_rbac(options)
    files["labeller/daemonset.yaml"] = [labeller_daemon_set(options)]
    files["labeller/node-restriction.yaml"] = labeller_node_restriction(options)
    files["doctor/rbac.yaml"] = doctor_rbac(options)
    for name in sorted(policies or {}):
        files[f"{POLICIES_DIR}/{name}"] = [
            render_policy(obj, options) for obj in (policies or {})[name]
        ]
    # Last: once these exist, the API server calls the webhook for every CCA VMI.
    files["webhook/webhook-configurations.yaml"] = webhook_configurations(options)
    if options.monitoring:
        files[f"{MONITORING_DIR}/monitors.yaml"] = pod_monitors(options)
        files[f"{MONITORING_DIR}/rules.yaml"] = [prometheus_rule(options)]
        files[f"{MONITORING_DIR}/kube-state-metrics.yaml"] = [kube_state_metrics_config(options)]
    return files


def install_objects(
    options: InstallOptions, policies: Mapping[str, Sequence[Manifest]] | None = None
) -> list[Manifest]:
    """Every install object, in the order ``kubectl apply`` should see them."""
    return [obj for objects in install_files(options, policies).values() for obj in objects]


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what identifies an object in a cluster."""
    metadata = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
    )
