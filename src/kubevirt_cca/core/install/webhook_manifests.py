"""The namespace, the ConfigMap, and the admission webhook: Deployment, Service, configurations."""

from __future__ import annotations

from typing import Any

from kubevirt_cca.constants import (
    CONFIG_MAP_NAME,
    ENABLED_LABEL,
    LAUNCHER_LABEL,
    LAUNCHER_LABEL_VALUE,
)
from kubevirt_cca.core.cluster.integration import INTEGRATION_MODE_KEY
from kubevirt_cca.core.cluster.settings import HOOK_IMAGE_KEY, Settings
from kubevirt_cca.core.install.names import (
    CA_INJECTION_ANNOTATION,
    CERT_MANAGER,
    CERTIFICATE_CONFIG_MAP,
    CERTS,
    CERTS_RENEWAL,
    CERTS_RENEWAL_SCHEDULE,
    NONROOT_UID,
    SCRATCH_DIR,
    SELF_SIGNED,
    SERVICE_PORT,
    TLS_DIR,
    TLS_SECRET,
    WEBHOOK,
    WEBHOOK_CERTIFICATE,
    WEBHOOK_CONFIGURATION,
    WEBHOOK_HEALTH_PORT,
    WEBHOOK_PORT,
    InstallOptions,
    Manifest,
    metadata,
    selector,
)
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS, Rule, Webhook

# Each replica serves every review; two keep admission going through a node drain or a rollout.
WEBHOOK_REPLICAS = 2
MALLOC_MMAP_THRESHOLD = "131072"


def namespace(options: InstallOptions) -> Manifest:
    meta = metadata(options.namespace, component="namespace")
    # Everything here runs restricted except the labeller's init container (privileged: it starts
    # virt-launcher's libvirt, as KubeVirt's own node labeller does), hence "privileged".
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def config_map(options: InstallOptions) -> Manifest:
    """kubevirt-cca-config with every default spelled out, so an admin sees what to change."""
    data = Settings().to_json()
    data[HOOK_IMAGE_KEY] = options.image
    data[INTEGRATION_MODE_KEY] = options.integration_mode.value  # docs/plugins.md
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(CONFIG_MAP_NAME, component="config", namespace=options.namespace),
        "data": data,
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NONROOT_UID,
        "runAsGroup": NONROOT_UID,
        "fsGroup": NONROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def webhook_args(options: InstallOptions) -> list[str]:
    return [
        "webhook",
        "--tls-cert-file",
        f"{TLS_DIR}/tls.crt",
        "--tls-key-file",
        f"{TLS_DIR}/tls.key",
        "--port",
        str(WEBHOOK_PORT),
        "--health-port",
        str(WEBHOOK_HEALTH_PORT),
        "--namespace",
        options.namespace,
        "--kubevirt-namespace",
        options.kubevirt_namespace,
    ]


def certs_container(options: InstallOptions) -> dict[str, Any]:
    """Self-signed mode: ``certs ensure`` makes or renews the serving certificate in its Secret
    and sets the ``caBundle`` of both webhook configurations (the certificate Job's container)."""
    return {
        "name": "certs",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "certs",
            "ensure",
            "--namespace",
            options.namespace,
            "--secret",
            TLS_SECRET,
            "--service",
            WEBHOOK,
            "--webhook-configuration",
            WEBHOOK_CONFIGURATION,
            "--config-map",
            CERTIFICATE_CONFIG_MAP,
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
        "securityContext": container_security(),
    }


def certificate_config_map(options: InstallOptions) -> list[Manifest]:
    """Self-signed mode: the ConfigMap ``certs ensure`` writes the public certificate into, for
    ``doctor``. Created empty here, so the certificate identity needs no ``create`` on
    ConfigMaps; without ``data``, a re-apply of the install leaves what it wrote alone."""
    if options.certificates != SELF_SIGNED:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(
                CERTIFICATE_CONFIG_MAP, component="certs", namespace=options.namespace
            ),
        }
    ]


def certs_jobs(options: InstallOptions) -> list[Manifest]:
    """Self-signed mode: a Job that makes the certificate at install, and a CronJob that renews
    it; both run as the ServiceAccount kubevirt-cca-certs, not as the webhook."""
    if options.certificates != SELF_SIGNED:
        return []
    ns = options.namespace
    labels = metadata(CERTS, component="certs")["labels"]
    pod: dict[str, Any] = {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": CERTS,
            "restartPolicy": "OnFailure",
            "securityContext": pod_security(),
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [certs_container(options)],
        },
    }
    job_spec: dict[str, Any] = {"backoffLimit": 10, "template": pod}
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata(CERTS, component="certs", namespace=ns),
            "spec": job_spec,
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata(CERTS_RENEWAL, component="certs", namespace=ns),
            "spec": {
                "schedule": CERTS_RENEWAL_SCHEDULE,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": job_spec},
            },
        },
    ]


def webhook_deployment(options: InstallOptions) -> list[Manifest]:
    """The webhook Deployment and its PodDisruptionBudget."""
    ns = options.namespace
    container: dict[str, Any] = {
        "name": "webhook",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": webhook_args(options),
        # glibc keeps freed 256 KiB TLS buffers of closed connections in its heap unless their
        # size is always mmap'd: with a fixed threshold, memory held by a flood of slow
        # clients goes back to the system when they leave (benchmarks/bench_hostile.py).
        "env": [{"name": "MALLOC_MMAP_THRESHOLD_", "value": MALLOC_MMAP_THRESHOLD}],
        "ports": [
            {"name": "https", "containerPort": WEBHOOK_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": WEBHOOK_HEALTH_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "health"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": SCRATCH_DIR},
        ],
    }
    # Both certificate modes: the Secret, mounted; a renewal reaches the running server (it
    # reloads the files on change). In self-signed mode the pod waits for the Job to make it.
    tls_volume: dict[str, Any] = {"name": "tls", "secret": {"secretName": TLS_SECRET}}
    pod_spec: dict[str, Any] = {
        "serviceAccountName": WEBHOOK,
        "securityContext": pod_security(),
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": selector("webhook")},
                        },
                    }
                ]
            }
        },
        "containers": [container],
        "volumes": [tls_volume, {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
    }
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(WEBHOOK, component="webhook", namespace=ns),
        "spec": {
            "replicas": WEBHOOK_REPLICAS,
            "selector": {"matchLabels": selector("webhook")},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": metadata(WEBHOOK, component="webhook")["labels"]},
                "spec": pod_spec,
            },
        },
    }
    budget: Manifest = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(WEBHOOK, component="webhook", namespace=ns),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector("webhook")}},
    }
    return [deployment, budget]


def webhook_service(options: InstallOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(WEBHOOK, component="webhook", namespace=options.namespace),
        "spec": {
            "selector": selector("webhook"),
            "ports": [
                {"name": "https", "port": SERVICE_PORT, "targetPort": "https", "protocol": "TCP"}
            ],
        },
    }


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "apiGroups": [rule.group],
        "apiVersions": list(rule.versions),
        "resources": list(rule.resources),
        "operations": list(rule.operations),
        "scope": rule.scope,
    }


def _webhook(webhook: Webhook, options: InstallOptions) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": webhook.name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {
                "name": WEBHOOK,
                "namespace": options.namespace,
                "path": webhook.path,
                "port": SERVICE_PORT,
            }
        },
        "rules": [_rule(rule) for rule in webhook.rules],
        "matchPolicy": "Equivalent",
        "failurePolicy": webhook.failure_policy,
        "sideEffects": "None",
        "timeoutSeconds": webhook.timeout_seconds,
    }
    if webhook.selector != "none":
        # Exists, not ="true": a VMI labelled "yes" or "True" must reach the webhook and be
        # refused with a message, never start as a plain VM.
        expressions: list[dict[str, Any]] = [{"key": ENABLED_LABEL, "operator": "Exists"}]
        if webhook.selector == "cca-launcher-pods":
            expressions.append(
                {"key": LAUNCHER_LABEL, "operator": "In", "values": [LAUNCHER_LABEL_VALUE]}
            )
        hook["objectSelector"] = {"matchExpressions": expressions}
    if webhook.mutating:
        hook["reinvocationPolicy"] = "IfNeeded"
    return hook


def webhook_configurations(options: InstallOptions) -> list[Manifest]:
    """Mutating and validating configurations: one webhook per entry of the webhook table.

    The table is core/vmi/webhook_table.py.
    """
    annotations = None
    if options.certificates == CERT_MANAGER:
        annotations = {CA_INJECTION_ANNOTATION: f"{options.namespace}/{WEBHOOK_CERTIFICATE}"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": metadata(
                WEBHOOK_CONFIGURATION, component="webhook", annotations=annotations
            ),
            "webhooks": [_webhook(hook, options) for hook in WEBHOOKS if hook.mutating == mutating],
        }
        for kind, mutating in (
            ("MutatingWebhookConfiguration", True),
            ("ValidatingWebhookConfiguration", False),
        )
    ]
