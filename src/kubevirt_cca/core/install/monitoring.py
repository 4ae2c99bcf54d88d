"""The optional monitoring objects (prometheus-operator's ``monitoring.coreos.com/v1``).

Off by default (``kubevirt-cca manifests --monitoring``, or ``deploy/monitoring/`` applied on its
own): a cluster without prometheus-operator has no PodMonitor or PrometheusRule kind, and
``kubectl apply`` would refuse the whole install for them. docs/monitoring.md explains each
alert; every alert's ``runbook_url`` points at its section there.

What is scraped and why, in short (the doc has the long form):

- two PodMonitors, the webhook's and the labeller's plain-HTTP ``health`` port (``/metrics``);
  neither pod has a Service for it, and a PodMonitor needs none;
- a kube-state-metrics custom-resource-state configuration (a ConfigMap the admin hands to
  their kube-state-metrics) exporting each VMI's phase with its ``cca.kubevirt.io/enabled``
  label: a hook refusal is visible only as a CCA VMI stuck in ``Scheduled`` (docs/hook.md), and
  the hook sidecar inside virt-launcher pods declares no port that anything could scrape.
"""

from __future__ import annotations

import json
from typing import Any, Final

from kubevirt_cca.constants import ENABLED_LABEL
from kubevirt_cca.core.install.names import (
    LABELLER,
    LABELLER_INTERVAL_SECONDS,
    WEBHOOK,
    InstallOptions,
    Manifest,
    metadata,
    selector,
)

MONITORING_DIR: Final = "monitoring"
MONITORING_COMPONENT: Final = "monitoring"
RULES: Final = "kubevirt-cca"
KUBE_STATE_METRICS_CONFIG: Final = "kubevirt-cca-kube-state-metrics"
KUBE_STATE_METRICS_KEY: Final = "custom-resource-state.yaml"
# Every alert links its section of this document.
RUNBOOKS: Final = "docs/monitoring.md"
SCRAPE_INTERVAL: Final = "30s"
# kube-state-metrics names a custom-resource metric <metricNamePrefix>_<name>.
VMI_PHASE_PREFIX: Final = "kubevirt_cca"
VMI_PHASE_METRIC: Final = "vmi_phase"
VMI_PHASES: Final = ("Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed")

# How old the labeller's last successful check may get: three of its intervals (a check that
# fails is retried with backoff well inside one).
LABELLER_STALE_SECONDS: Final = 3 * LABELLER_INTERVAL_SECONDS
# cert-manager renews at two thirds of the lifetime and `certs ensure` 30 days ahead: a serving
# certificate with less than 14 days left was not renewed; with less than 2 it soon stops TLS.
CERTIFICATE_WARNING_DAYS: Final = 14
CERTIFICATE_CRITICAL_DAYS: Final = 2
# A VMI normally passes Scheduled within seconds; a hook refusal keeps it there (retried).
VMI_STUCK_FOR: Final = "10m"


def pod_monitors(options: InstallOptions) -> list[Manifest]:
    return [_pod_monitor(options, WEBHOOK, "webhook"), _pod_monitor(options, LABELLER, "labeller")]


def _pod_monitor(options: InstallOptions, name: str, component: str) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(name, component=MONITORING_COMPONENT, namespace=options.namespace),
        "spec": {
            "selector": {"matchLabels": selector(component)},
            "namespaceSelector": {"matchNames": [options.namespace]},
            "podMetricsEndpoints": [
                {"port": "health", "path": "/metrics", "interval": SCRAPE_INTERVAL}
            ],
        },
    }


def _alert(
    name: str,
    *,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    description: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOKS}#{name.lower()}",
        },
    }


def alert_rules(options: InstallOptions) -> list[dict[str, Any]]:
    """The alerts, in the order docs/monitoring.md describes them."""
    scope = f'namespace="{options.namespace}"'
    return [
        _alert(
            "KubevirtCCANoCapableNode",
            expr=f"sum(kubevirt_cca_labeller_cca_capable{{{scope}}}) == 0",
            duration="15m",
            severity="warning",
            summary="No node can run Arm CCA Realms",
            description="Every kubevirt-cca labeller reports its node not CCA-capable, "
            "so no CCA VMI can be scheduled. kubectl get nodes -L kubevirt.io/cca; "
            "the node annotation cca.kubevirt.io/detection says why.",
        ),
        _alert(
            "KubevirtCCALabellerStale",
            expr=(
                f"time() - kubevirt_cca_labeller_last_success_timestamp_seconds{{{scope}}}"
                f" > {LABELLER_STALE_SECONDS}"
            ),
            duration="5m",
            severity="warning",
            summary="The kubevirt-cca labeller on a node has not finished a check lately",
            description="The labeller pod {{ $labels.pod }} has not finished a check without "
            f"error for over {LABELLER_STALE_SECONDS} seconds; "
            "its node's CCA labels may be out of date.",
        ),
        _alert(
            "KubevirtCCAWebhookCertificateExpiring",
            expr=(
                "kubevirt_cca_webhook_certificate_not_after_timestamp_seconds"
                f"{{{scope}}} - time() < {CERTIFICATE_WARNING_DAYS} * 86400"
            ),
            duration="1h",
            severity="warning",
            summary="The kubevirt-cca webhook's serving certificate was not renewed",
            description="The certificate the webhook pod {{ $labels.pod }} serves expires in "
            f"less than {CERTIFICATE_WARNING_DAYS} days; renewal should have replaced it.",
        ),
        _alert(
            "KubevirtCCAWebhookCertificateExpiresSoon",
            expr=(
                "kubevirt_cca_webhook_certificate_not_after_timestamp_seconds"
                f"{{{scope}}} - time() < {CERTIFICATE_CRITICAL_DAYS} * 86400"
            ),
            duration="10m",
            severity="critical",
            summary="The kubevirt-cca webhook's serving certificate is about to expire",
            description="The certificate the webhook pod {{ $labels.pod }} serves expires in "
            f"less than {CERTIFICATE_CRITICAL_DAYS} days; "
            "then the API server refuses every CCA VMI (failurePolicy Fail).",
        ),
        _alert(
            "KubevirtCCAAdmissionErrors",
            expr=(
                "sum by (endpoint) (rate(kubevirt_cca_admissions_total"
                f'{{{scope},verdict="error"}}[10m])) > 0'
            ),
            duration="5m",
            severity="critical",
            summary="The kubevirt-cca webhook fails while deciding admission requests",
            description="The webhook's {{ $labels.endpoint }} endpoint answered requests with "
            "an internal error (refused, fail closed); its log has the traceback.",
        ),
        _alert(
            "KubevirtCCAAdmissionMalformed",
            expr=(
                "sum by (endpoint) (rate(kubevirt_cca_admissions_total"
                f'{{{scope},verdict="malformed"}}[10m])) > 0'
            ),
            duration="15m",
            severity="warning",
            summary="The kubevirt-cca webhook receives requests it cannot read",
            description="The webhook's {{ $labels.endpoint }} endpoint keeps receiving bodies that "
            "are not AdmissionReviews (HTTP 4xx): a client other than the API server, "
            "or a version the webhook does not speak.",
        ),
        _alert(
            "KubevirtCCAVMINotStarting",
            expr=(
                "max by (namespace, name) "
                f'({VMI_PHASE_PREFIX}_{VMI_PHASE_METRIC}{{cca="true",phase="Scheduled"}}) == 1'
            ),
            duration=VMI_STUCK_FOR,
            severity="warning",
            summary="A CCA VMI does not start (the hook may be refusing it)",
            description="The CCA VMI {{ $labels.namespace }}/{{ $labels.name }} has been "
            f"in phase Scheduled for {VMI_STUCK_FOR}: "
            "virt-launcher runs but the domain is not defined, "
            "which is what a hook refusal looks like. "
            "kubectl describe vmi shows the SyncFailed event with the hook's reason.",
        ),
    ]


def prometheus_rule(options: InstallOptions) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(RULES, component=MONITORING_COMPONENT, namespace=options.namespace),
        "spec": {"groups": [{"name": "kubevirt-cca", "rules": alert_rules(options)}]},
    }


def kube_state_metrics_resource() -> dict[str, Any]:
    """kube-state-metrics' custom-resource-state entry: each VMI's phase and its CCA label."""
    return {
        "groupVersionKind": {
            "group": "kubevirt.io",
            "version": "v1",
            "kind": "VirtualMachineInstance",
        },
        "metricNamePrefix": VMI_PHASE_PREFIX,
        "labelsFromPath": {
            "namespace": ["metadata", "namespace"],
            "name": ["metadata", "name"],
            "cca": ["metadata", "labels", ENABLED_LABEL],
        },
        "metrics": [
            {
                "name": VMI_PHASE_METRIC,
                "help": "The VMI's phase (1 for the phase it is in), "
                f"with its {ENABLED_LABEL} label as cca",
                "each": {
                    "type": "StateSet",
                    "stateSet": {
                        "labelName": "phase",
                        "path": ["status", "phase"],
                        "list": list(VMI_PHASES),
                    },
                },
            }
        ],
    }


def kube_state_metrics_config(options: InstallOptions) -> Manifest:
    config = {
        "kind": "CustomResourceStateMetrics",
        "spec": {"resources": [kube_state_metrics_resource()]},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            KUBE_STATE_METRICS_CONFIG, component=MONITORING_COMPONENT, namespace=options.namespace
        ),
        "data": {
            # JSON is YAML: kube-state-metrics reads it as its configuration file.
            KUBE_STATE_METRICS_KEY: json.dumps(config, indent=2) + "\n"
        },
    }
