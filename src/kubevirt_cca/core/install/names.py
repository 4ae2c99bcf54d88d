"""Install options and the names every install object, ``doctor`` and the docs share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from kubevirt_cca import __version__
from kubevirt_cca.constants import DEFAULT_HOOK_IMAGE, INSTALL_NAMESPACE
from kubevirt_cca.core.cluster.integration import IntegrationMode, parse_mode
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS
from kubevirt_cca.errors import SettingsError

Manifest = dict[str, Any]
CertificateMode = Literal["cert-manager", "self-signed"]
CERT_MANAGER: Final = "cert-manager"
SELF_SIGNED: Final = "self-signed"
CERTIFICATE_MODES: Final = (CERT_MANAGER, SELF_SIGNED)

KUBEVIRT_NAMESPACE: Final = "kubevirt"
# KubeVirt's own virt-launcher image: its libvirt is the one that starts Realms, so it is the one
# the labeller asks (docs/architecture.md, "Why the labeller asks virt-launcher's libvirt").
# Set it to the image your KubeVirt runs (kubevirt-cca doctor compares them).
DEFAULT_VIRT_LAUNCHER_IMAGE: Final = "quay.io/kubevirt/virt-launcher:v1.8.0"

APP: Final = "kubevirt-cca"
WEBHOOK: Final = "kubevirt-cca-webhook"
LABELLER: Final = "kubevirt-cca-labeller"
DOCTOR: Final = "kubevirt-cca-doctor"
# Self-signed mode: the identity (ServiceAccount, Job, CronJob) that creates and renews the
# serving certificate; the webhook itself cannot write Secrets or webhook configurations.
CERTS: Final = "kubevirt-cca-certs"
CERTS_RENEWAL: Final = "kubevirt-cca-certs-renewal"
CERTS_RENEWAL_SCHEDULE: Final = "17 3 * * *"  # daily; `certs ensure` renews 30 days ahead
# The name of both the Mutating- and the ValidatingWebhookConfiguration.
WEBHOOK_CONFIGURATION: Final = "kubevirt-cca"
# Secret names (not secrets): the serving certificate and cert-manager's CA.
TLS_SECRET: Final = "kubevirt-cca-webhook-tls"  # noqa: S105
CA_SECRET: Final = "kubevirt-cca-ca"  # noqa: S105
# Self-signed mode: the public half of the serving certificate (tls.crt, ca.crt), written by
# `certs ensure` for `doctor`, which reads no Secret (docs/admin.md, "Who may run doctor").
CERTIFICATE_CONFIG_MAP: Final = "kubevirt-cca-webhook-certificate"
SELFSIGNED_ISSUER: Final = "kubevirt-cca-selfsigned"
CA_ISSUER: Final = "kubevirt-cca-ca"
CA_CERTIFICATE: Final = "kubevirt-cca-ca"
WEBHOOK_CERTIFICATE: Final = "kubevirt-cca-webhook"
NODE_RESTRICTION_POLICY: Final = "kubevirt-cca-labeller-node-restriction"
EVENT_RESTRICTION_POLICY: Final = "kubevirt-cca-labeller-events"
# Self-signed mode: what the certificate identity may change (core/install/certs_policy.py).
CERTS_WEBHOOK_POLICY: Final = "kubevirt-cca-certs-ca-bundle-only"
CERTS_SECRET_POLICY: Final = "kubevirt-cca-certs-secret-name"  # noqa: S105
CA_INJECTION_ANNOTATION: Final = "cert-manager.io/inject-ca-from"

# The webhooks, by name, as the table in core/vmi/webhook_table.py defines them.
WEBHOOK_PATHS: Final = {hook.name: hook.path for hook in WEBHOOKS}
# docs/admin.md, "Failure policies", says why: only CCA VMIs (selected by label) fail closed.
FAILURE_POLICIES: Final = {hook.name: hook.failure_policy for hook in WEBHOOKS}
# The ones with the enable-label selector that must fail closed.
SELECTED_WEBHOOKS: Final = tuple(hook.name for hook in WEBHOOKS if hook.selector == "cca-vmis")

WEBHOOK_PORT: Final = 8443
WEBHOOK_HEALTH_PORT: Final = 8080
LABELLER_HEALTH_PORT: Final = 8081
SERVICE_PORT: Final = 443
TLS_DIR: Final = "/etc/kubevirt-cca/tls"
DOMCAPS_DIR: Final = "/var/lib/kubevirt-node-labeller"
DOMCAPS_FILE: Final = f"{DOMCAPS_DIR}/virsh_domcapabilities.xml"
# What the virt-launcher image's QEMU prints for `-object rme-guest,help` (stdout and stderr).
RME_GUEST_HELP_FILE: Final = f"{DOMCAPS_DIR}/rme_guest_help.txt"
HOST_ROOT: Final = "/host"
LABELLER_INTERVAL_SECONDS: Final = 300
NONROOT_UID: Final = 65532
# A writable scratch directory in the containers (their root file system is read-only).
SCRATCH_DIR: Final = "/tmp"  # noqa: S108

# A DNS-1123 label (namespace names) and a loose image reference check: enough to refuse typos
# that would otherwise produce manifests the API server rejects far from the cause.
_DNS_LABEL = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
# A container image reference, as the distribution reference grammar (what container runtimes
# parse) defines it: [host[:port]/]path[:tag][@algorithm:hex].
_HOST_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"\A(?:{_HOST}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z"
)
_IMAGE_NAME_LIMIT = 255
# The same grammar for the Helm chart's values.schema.json (RE2 syntax: no \A, \Z).
IMAGE_REFERENCE_PATTERN: Final = _IMAGE.pattern.removeprefix(r"\A").removesuffix(r"\Z")
# Namespaces kubevirt-cca is never installed into: the manifests carry a Namespace object with a
# privileged Pod Security label, so applying them would relabel the namespace and deleting them
# would delete it.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


@dataclass(frozen=True, kw_only=True)
class InstallOptions:
    """What an admin may choose when installing (``kubevirt-cca manifests --help``)."""

    image: str = DEFAULT_HOOK_IMAGE
    namespace: str = INSTALL_NAMESPACE
    kubevirt_namespace: str = KUBEVIRT_NAMESPACE
    virt_launcher_image: str = DEFAULT_VIRT_LAUNCHER_IMAGE
    certificates: CertificateMode = CERT_MANAGER
    integration_mode: IntegrationMode = IntegrationMode.AUTO
    """``integrationMode`` of kubevirt-cca-config, also rendered into the admission policies."""
    # The PodMonitors, PrometheusRule and kube-state-metrics configuration (monitoring.py).
    monitoring: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "integration_mode", parse_mode(self.integration_mode))
        for field, value in (
            ("namespace", self.namespace),
            ("kubevirt-namespace", self.kubevirt_namespace),
        ):
            if not _DNS_LABEL.match(value):
                raise SettingsError(
                    f"{field}: expected a namespace name (lower-case letters, digits and '-', "
                    f"at most 63 characters), got {value!r}"
                )
        if self.namespace in SYSTEM_NAMESPACES or self.namespace.startswith("openshift-"):
            raise SettingsError(
                f"namespace: {self.namespace!r} is a system namespace; "
                "kubevirt-cca's install includes its Namespace object "
                "(with a privileged Pod Security label), "
                "so applying it would relabel that namespace and deleting it would delete it. "
                "Choose a namespace of its own, e.g. kubevirt-cca"
            )
        for field, value in (
            ("image", self.image),
            ("virt-launcher-image", self.virt_launcher_image),
        ):
            name = value.split("@", 1)[0]
            if not _IMAGE.match(value) or len(name) > _IMAGE_NAME_LIMIT:
                raise SettingsError(
                    f"{field}: "
                    "expected a container image reference "
                    "[registry[:port]/]path[:tag][@sha256:digest] such as "
                    f"registry.example/kubevirt-cca:{__version__}, got {value!r}"
                )
        if self.certificates not in CERTIFICATE_MODES:
            raise SettingsError(
                f"certificates: expected one of {', '.join(CERTIFICATE_MODES)}, "
                f"got {self.certificates!r}"
            )


def service_dns_names(options: InstallOptions) -> list[str]:
    """The names the API server may use for the webhook Service (the certificate's SANs)."""
    base = f"{WEBHOOK}.{options.namespace}"
    return [WEBHOOK, base, f"{base}.svc", f"{base}.svc.cluster.local"]


def labels(component: str) -> dict[str, str]:
    """The recommended labels of every object; the first two also select the pods."""
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": APP,
    }


def selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def metadata(
    name: str,
    *,
    component: str,
    namespace: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(component)
    if annotations:
        meta["annotations"] = annotations
    return meta


def service_account_user(namespace: str, name: str) -> str:
    """The user name the API server gives a service account's token."""
    return f"system:serviceaccount:{namespace}:{name}"
