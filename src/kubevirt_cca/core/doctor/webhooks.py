"""The admission path: webhook configurations, the Service behind them, the certificate, and
the in-API-server policies that keep CCA VMIs closed when the webhook is away."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from kubevirt_cca.constants import ENABLED_LABEL, ENABLED_VALUE
from kubevirt_cca.core.certs import dns_names_of, issued_by
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Read,
    Snapshot,
    Status,
    dig,
    mapping,
    objects,
    strings,
    unreadable,
)
from kubevirt_cca.core.doctor.policies import pin_problems, re_render_fix
from kubevirt_cca.core.install.names import (
    CA_INJECTION_ANNOTATION,
    CERTS,
    CERTS_RENEWAL,
    FAILURE_POLICIES,
    SELECTED_WEBHOOKS,
    TLS_SECRET,
    WEBHOOK,
    WEBHOOK_CONFIGURATION,
    WEBHOOK_PATHS,
    service_dns_names,
)

CERTIFICATE_WARNING = timedelta(days=14)


def _configurations(snapshot: Snapshot) -> list[tuple[str, Read, list[str]]]:
    names = list(WEBHOOK_PATHS)
    return [
        (
            "MutatingWebhookConfiguration",
            snapshot.mutating,
            [n for n in names if n.startswith("mutate-")],
        ),
        (
            "ValidatingWebhookConfiguration",
            snapshot.validating,
            [n for n in names if n.startswith("validate-")],
        ),
    ]


def selects_cca_vmis(selector: Any) -> bool:
    """Whether an objectSelector lets every VMI carrying the enable label through."""
    if not isinstance(selector, dict):
        return False
    labels = mapping(selector.get("matchLabels"))
    expressions = objects(selector.get("matchExpressions"))
    if (
        any(k != ENABLED_LABEL for k in labels)
        or labels.get(ENABLED_LABEL, ENABLED_VALUE) != ENABLED_VALUE
    ):
        return False
    keys = {e.get("key") for e in expressions}
    if keys - {ENABLED_LABEL}:
        return False
    for expression in expressions:
        operator, values = expression.get("operator"), strings(expression.get("values"))
        if operator not in ("Exists", "In") or (operator == "In" and ENABLED_VALUE not in values):
            return False
    return bool(labels) or bool(expressions)


def check_webhook_configurations(snapshot: Snapshot, expected: Expected) -> Check:
    name = "webhook configurations"
    namespace = expected.options.namespace
    failures: list[str] = []
    warnings: list[str] = []
    for kind, read, hook_names in _configurations(snapshot):
        if read.error:
            return unreadable(name, f"{kind} {WEBHOOK_CONFIGURATION}", read)
        if read.missing:
            failures.append(f"{kind} {WEBHOOK_CONFIGURATION} is missing")
            continue
        hooks = {h.get("name"): h for h in objects(dig(read.value, "webhooks"))}
        for hook_name in hook_names:
            hook = hooks.get(hook_name)
            if hook is None:
                failures.append(f"{kind} {WEBHOOK_CONFIGURATION} has no webhook {hook_name}")
                continue
            failures += _hook_problems(hook_name, hook, namespace)
            policy = hook.get("failurePolicy", "Fail")
            wanted = FAILURE_POLICIES[hook_name]
            if policy != wanted and hook_name not in SELECTED_WEBHOOKS:
                warnings.append(
                    f"{hook_name}: failurePolicy is {policy}, kubevirt-cca ships "
                    f"{wanted} (docs/admin.md, 'Failure policies')"
                )
    fix = (
        "re-apply the install as you first applied it (kubevirt-cca manifests --image "
        "YOUR-IMAGE | kubectl apply -f -, or your kustomize overlay of deploy/)"
    )
    if failures:
        return Check(
            name,
            Status.FAIL,
            f"{len(failures)} problem(s): CCA VMIs are refused (or "
            "not made Realms) until they are fixed",
            tuple(failures + warnings),
            fix=fix,
        )
    if warnings:
        return Check(name, Status.WARN, "present, with changed failure policies", tuple(warnings))
    return Check(
        name, Status.OK, "present: CCA VMIs fail closed, templates and migrations are checked"
    )


def _hook_problems(hook_name: str, hook: dict[str, Any], namespace: str) -> list[str]:
    problems = []
    service = mapping(dig(hook, "clientConfig", "service"))
    target = (service.get("namespace"), service.get("name"), service.get("path"))
    wanted = (namespace, WEBHOOK, WEBHOOK_PATHS[hook_name])
    url = dig(hook, "clientConfig", "url")
    if isinstance(url, str) and not service:
        problems.append(
            f"{hook_name}: calls URL {url}, not Service {wanted[0]}/{wanted[1]} path "
            f"{wanted[2]} (doctor checks only the Service the install creates)"
        )
    elif target != wanted:
        shown = [part if part is not None else "(unset)" for part in target]
        problems.append(
            f"{hook_name}: calls service {shown[0]}/{shown[1]} path {shown[2]}, "
            f"expected {wanted[0]}/{wanted[1]} path {wanted[2]}"
        )
    if not dig(hook, "clientConfig", "caBundle"):
        problems.append(
            f"{hook_name}: clientConfig.caBundle is empty, so the API server cannot "
            "trust the webhook's certificate"
        )
    if hook_name in SELECTED_WEBHOOKS:
        policy = hook.get("failurePolicy", "Fail")
        if policy != "Fail":
            problems.append(
                f"{hook_name}: failurePolicy is {policy}; it must be Fail, or a CCA "
                "VMI could start as a plain VM while the webhook is down"
            )
        if not selects_cca_vmis(hook.get("objectSelector")):
            problems.append(
                f"{hook_name}: objectSelector does not select exactly the VMIs "
                f"labelled {ENABLED_LABEL}"
            )
    if hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        problems.append(f"{hook_name}: sideEffects is {hook.get('sideEffects')}, expected None")
    return problems


def check_webhook_service(snapshot: Snapshot, expected: Expected) -> Check:
    name = "webhook service"
    namespace = expected.options.namespace
    for what, read in (("Service", snapshot.service), ("EndpointSlices", snapshot.endpoint_slices)):
        if read.error:
            return unreadable(name, f"{what} {namespace}/{WEBHOOK}", read)
    if snapshot.service.missing:
        return Check(
            name,
            Status.FAIL,
            f"Service {namespace}/{WEBHOOK} is missing: the API "
            "server has nowhere to send CCA VMIs",
            fix="re-apply the install",
        )
    ready = 0
    for endpoint_slice in snapshot.endpoint_slices.items():
        if dig(endpoint_slice, "metadata", "labels", "kubernetes.io/service-name") != WEBHOOK:
            continue
        for endpoint in objects(endpoint_slice.get("endpoints")):
            if dig(endpoint, "conditions", "ready") is not False:
                ready += 1
    replicas = dig(snapshot.deployment.value, "spec", "replicas")
    pods = f"kubectl get pods -n {namespace} -l app.kubernetes.io/component=webhook"
    if ready == 0:
        return Check(
            name,
            Status.FAIL,
            f"no ready webhook pod behind Service {namespace}/"
            f"{WEBHOOK}: CCA VMIs cannot be created",
            fix=f"{pods}; then kubectl logs / describe the pods that are not Ready",
        )
    if ready == 1:
        return Check(
            name,
            Status.WARN,
            f"1 ready webhook pod (of {replicas or '?'}): a node "
            "drain or a crash stops CCA VMI creation",
            fix=pods,
        )
    return Check(name, Status.OK, f"{ready} ready webhook pods")


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def uses_cert_manager(snapshot: Snapshot) -> bool:
    """Whether cert-manager injects the CA (the annotation the default install sets); the
    self-signed install has none. Without any configuration to look at: the default."""
    configs = [r.value for r in (snapshot.mutating, snapshot.validating) if r.value is not None]
    if not configs:
        return True
    return any(dig(c, "metadata", "annotations", CA_INJECTION_ANNOTATION) for c in configs)


def check_certificate(snapshot: Snapshot, expected: Expected) -> Check:
    name = "webhook certificate"
    namespace = expected.options.namespace
    read = snapshot.secret
    if read.error:
        return unreadable(name, f"Secret {namespace}/{TLS_SECRET}", read)
    cert_manager = uses_cert_manager(snapshot)
    if cert_manager:
        source = (
            "cert-manager has not issued it: kubectl describe certificate "
            f"kubevirt-cca-webhook -n {namespace}"
        )
    else:
        source = f"the certificate Job has not run: kubectl logs -n {namespace} job/{CERTS}"
    if read.missing:
        return Check(name, Status.FAIL, f"Secret {namespace}/{TLS_SECRET} is missing", fix=source)
    try:
        encoded = dig(read.value, "data", "tls.crt")
        if not isinstance(encoded, str):
            raise ValueError("no tls.crt key")
        leaf = _pem_certificates(base64.b64decode(encoded, validate=True))[0]
    except (binascii.Error, ValueError, IndexError) as exc:
        return Check(
            name,
            Status.FAIL,
            f"Secret {namespace}/{TLS_SECRET} holds no readable tls.crt ({exc})",
            fix=source,
        )
    problems: list[str] = []
    now = snapshot.now
    expires = leaf.not_valid_after_utc
    if leaf.not_valid_before_utc > now:
        problems.append(f"not valid before {_when(leaf.not_valid_before_utc)}")
    if expires <= now:
        problems.append(f"expired {_when(expires)}")
    names = dns_names_of(leaf)
    wanted = service_dns_names(expected.options)[2]
    if wanted not in names:
        problems.append(f"does not name {wanted} (names: {', '.join(names) or 'none'})")
    problems += _trust_problems(snapshot, leaf)
    if problems:
        return Check(
            name,
            Status.FAIL,
            "the API server will refuse the webhook's certificate",
            tuple(problems),
            fix=source,
        )
    left = expires - now
    summary = f"valid until {_when(expires)} ({left.days} days), trusted by both configurations"
    if left < CERTIFICATE_WARNING:
        renew = (
            "cert-manager renews it 30 days before expiry: check the Certificate"
            if cert_manager
            else f"the CronJob {CERTS_RENEWAL} renews it daily from 30 days before expiry; "
            f"to renew now: kubectl create job -n {namespace} --from=cronjob/"
            f"{CERTS_RENEWAL} {CERTS}-now"
        )
        return Check(name, Status.WARN, summary, (f"expires in {left.days} days",), fix=renew)
    return Check(name, Status.OK, summary)


def _trust_problems(snapshot: Snapshot, leaf: x509.Certificate) -> list[str]:
    problems = []
    for kind, read, _ in _configurations(snapshot):
        if read.value is None:
            continue
        for hook in objects(dig(read.value, "webhooks")):
            bundle = dig(hook, "clientConfig", "caBundle")
            if not bundle:
                continue  # reported by the configuration check
            try:
                if not isinstance(bundle, str):
                    raise ValueError("not a string")
                authorities = _pem_certificates(base64.b64decode(bundle, validate=True))
            except (binascii.Error, ValueError):
                problems.append(f"{kind} webhook {hook.get('name')}: caBundle is not PEM")
                continue
            if not any(issued_by(leaf, ca) for ca in authorities):
                problems.append(
                    f"{kind} webhook {hook.get('name')}: caBundle does not hold the "
                    "CA that signed the certificate (x509: certificate signed by "
                    "unknown authority)"
                )
    return problems


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def check_admission_policies(snapshot: Snapshot, expected: Expected) -> Check:
    name = "admission policies"
    missing = []
    for key in expected.policies:
        read = snapshot.policies.get(key, Read())
        if read.error:
            return unreadable(name, f"{key[0]} {key[1]}", read)
        if read.value is None:
            missing.append(f"{key[0]} {key[1]} is missing")
    if missing:
        return Check(
            name,
            Status.FAIL,
            "in-API-server policies are missing: without them a "
            "labelled VMI could start as a plain VM when the webhooks are skipped, and "
            "the labeller could touch any node",
            tuple(missing),
            fix="re-apply the install; the API server must be Kubernetes 1.30 or newer "
            "(ValidatingAdmissionPolicy v1)",
        )
    pins = pin_problems(snapshot)
    if pins.refusing:
        return Check(
            name,
            Status.FAIL,
            "the policies pin another hook image or mode than kubevirt-cca-config: CCA VMIs "
            "that the webhook admits are refused by the policies",
            (*pins.refusing, *pins.weaker),
            fix=re_render_fix(expected.options.namespace, snapshot),
        )
    if pins.weaker:
        return Check(
            name,
            Status.WARN,
            "the policies were rendered for another integration mode than kubevirt-cca-config "
            "says: the backstop judges that mode",
            pins.weaker,
            fix=re_render_fix(expected.options.namespace, snapshot),
        )
    return Check(name, Status.OK, f"{len(expected.policies)} policies and bindings present")
