"""The admission path: webhook configurations, the Service behind them, and the in-API-server
policies that keep CCA VMIs closed when the webhook is away (the certificate: certificate.py)."""

from __future__ import annotations

from typing import Any

from kubevirt_cca.constants import ENABLED_LABEL, ENABLED_VALUE
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Read,
    Snapshot,
    Status,
    mapping,
    objects,
    strings,
    unreadable,
)
from kubevirt_cca.core.doctor.policies import pin_problems, re_render_fix
from kubevirt_cca.core.doctor.webhook_fields import extra_webhooks, field_differences
from kubevirt_cca.core.install.names import (
    CA_INJECTION_ANNOTATION,
    FAILURE_POLICIES,
    SELECTED_WEBHOOKS,
    SERVICE_PORT,
    TLS_SECRET,
    WEBHOOK,
    WEBHOOK_CONFIGURATION,
    WEBHOOK_PATHS,
)
from kubevirt_cca.core.install.webhook_manifests import webhook_configurations
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS
from kubevirt_cca.core.wire.objects import dig


def configurations(snapshot: Snapshot) -> list[tuple[str, Read, list[str]]]:
    return [
        (
            "MutatingWebhookConfiguration",
            snapshot.mutating,
            [hook.name for hook in WEBHOOKS if hook.mutating],
        ),
        (
            "ValidatingWebhookConfiguration",
            snapshot.validating,
            [hook.name for hook in WEBHOOKS if not hook.mutating],
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


def _rendered(expected: Expected) -> dict[str, dict[str, dict[str, Any]]]:
    """The webhooks ``kubevirt-cca manifests`` renders, by configuration kind and name."""
    return {
        str(config["kind"]): {str(h["name"]): h for h in config["webhooks"]}
        for config in webhook_configurations(expected.options)
    }


CERT_MANAGER_FIX = (
    "install cert-manager (docs/install.md, 'What you need first'), or install without it: "
    "kubevirt-cca manifests --certificates self-signed --image YOUR-IMAGE --virt-launcher-image "
    "YOUR-LAUNCHER | kubectl apply -f - (docs/install.md, 'Without cert-manager')"
)


def cert_manager_missing(snapshot: Snapshot) -> bool:
    """Whether the install relies on cert-manager but the API server serves no cert-manager.io
    CertificateRequests (their list was not found: cert-manager's CRDs are not installed)."""
    return uses_cert_manager(snapshot) and snapshot.certificate_requests.missing


def cert_manager_missing_line(what: str) -> str:
    return (
        "cert-manager is not installed "
        "(the API server serves no cert-manager.io/v1 CertificateRequests), "
        f"but this install relies on it: {what}"
    )


def check_webhook_configurations(snapshot: Snapshot, expected: Expected) -> Check:
    name = "webhook configurations"
    namespace = expected.options.namespace
    rendered = _rendered(expected)
    failures: list[str] = []
    warnings: list[str] = []
    # Without cert-manager its CA injector never fills caBundle: one line for the cause.
    no_injector = cert_manager_missing(snapshot)
    uninjected = 0
    for kind, read, _ in configurations(snapshot):
        if read.error:
            return unreadable(name, f"{kind} {WEBHOOK_CONFIGURATION}", read)
        if read.missing:
            failures.append(f"{kind} {WEBHOOK_CONFIGURATION} is missing")
            continue
        found = dig(read.value, "webhooks")
        hooks = {h.get("name"): h for h in objects(found)}
        shipped = rendered[kind]
        for hook_name, wanted_hook in shipped.items():
            hook = hooks.get(hook_name)
            if hook is None:
                failures.append(f"{kind} {WEBHOOK_CONFIGURATION} has no webhook {hook_name}")
                continue
            problems = _hook_problems(hook_name, hook, namespace, ca_bundle=not no_injector)
            if no_injector and not dig(hook, "clientConfig", "caBundle"):
                uninjected += 1
            differences = field_differences(
                hook_name, hook, wanted_hook, mutating=kind.startswith("Mutating")
            )
            if any("objectSelector does not select" in p for p in problems):
                differences.pop("objectSelector", None)  # said above, with what it means
            failures += problems + list(differences.values())
            policy = hook.get("failurePolicy", "Fail")
            wanted = FAILURE_POLICIES[hook_name]
            if policy != wanted and hook_name not in SELECTED_WEBHOOKS:
                warnings.append(
                    f"{hook_name}: failurePolicy is {policy}, kubevirt-cca ships {wanted} "
                    "(docs/admin.md, 'Failure policies')"
                )
        failures += extra_webhooks(kind, WEBHOOK_CONFIGURATION, found, list(shipped))
    fix = (
        "re-apply the install as you first applied it (kubevirt-cca manifests --image YOUR-IMAGE "
        "--virt-launcher-image YOUR-LAUNCHER | kubectl apply -f -, "
        "or your kustomize overlay of deploy/)"
    )
    if uninjected:
        failures.insert(
            0,
            cert_manager_missing_line(
                f"its CA injector fills caBundle, which is empty in {uninjected} webhook(s), "
                "so the API server cannot trust the webhook"
            ),
        )
        fix = CERT_MANAGER_FIX if len(failures) == 1 else f"{CERT_MANAGER_FIX}; then {fix}"
    if failures:
        return Check(
            name,
            Status.FAIL,
            f"{len(failures)} problem(s): CCA VMIs are refused "
            "(or not made Realms) until they are fixed",
            tuple(failures + warnings),
            fix=fix,
        )
    if warnings:
        return Check(name, Status.WARN, "present, with changed failure policies", tuple(warnings))
    return Check(
        name,
        Status.OK,
        "present and as rendered: CCA VMIs fail closed, templates and migrations are checked",
    )


def _hook_problems(
    hook_name: str, hook: dict[str, Any], namespace: str, *, ca_bundle: bool = True
) -> list[str]:
    """What is wrong with one stored webhook; ``ca_bundle``: whether an empty caBundle is
    its own problem (not when its cause, cert-manager missing, is said once instead)."""
    problems = []
    service = mapping(dig(hook, "clientConfig", "service"))
    target = (service.get("namespace"), service.get("name"), service.get("path"))
    wanted = (namespace, WEBHOOK, WEBHOOK_PATHS[hook_name])
    url = dig(hook, "clientConfig", "url")
    if isinstance(url, str) and not service:
        problems.append(
            f"{hook_name}: calls URL {url}, not Service {wanted[0]}/{wanted[1]} path {wanted[2]} "
            "(doctor checks only the Service the install creates)"
        )
    elif target != wanted:
        shown = [part if part is not None else "(unset)" for part in target]
        problems.append(
            f"{hook_name}: calls service {shown[0]}/{shown[1]} path {shown[2]}, "
            f"expected {wanted[0]}/{wanted[1]} path {wanted[2]}"
        )
    elif service.get("port", SERVICE_PORT) != SERVICE_PORT:
        problems.append(
            f"{hook_name}: calls service port {service.get('port')}, expected {SERVICE_PORT}"
        )
    if ca_bundle and not dig(hook, "clientConfig", "caBundle"):
        problems.append(
            f"{hook_name}: clientConfig.caBundle is empty, "
            "so the API server cannot trust the webhook's certificate"
        )
    if hook_name in SELECTED_WEBHOOKS:
        policy = hook.get("failurePolicy", "Fail")
        if policy != "Fail":
            problems.append(
                f"{hook_name}: failurePolicy is {policy}; it must be Fail, "
                "or a CCA VMI could start as a plain VM while the webhook is down"
            )
        if not selects_cca_vmis(hook.get("objectSelector")):
            problems.append(
                f"{hook_name}: "
                f"objectSelector does not select exactly the VMIs labelled {ENABLED_LABEL}"
            )
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
            f"Service {namespace}/{WEBHOOK} is missing: "
            "the API server has nowhere to send CCA VMIs",
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
        summary = (
            f"no ready webhook pod behind Service {namespace}/{WEBHOOK}: CCA VMIs cannot be created"
        )
        if cert_manager_missing(snapshot):
            waiting = f"the pods wait for Secret {TLS_SECRET}, which it would issue"
            return Check(
                name,
                Status.FAIL,
                summary,
                (cert_manager_missing_line(waiting),),
                fix=CERT_MANAGER_FIX,
            )
        return Check(
            name,
            Status.FAIL,
            summary,
            fix=f"{pods}; then kubectl logs / describe the pods that are not Ready",
        )
    if ready == 1:
        return Check(
            name,
            Status.WARN,
            f"1 ready webhook pod (of {replicas or '?'}): "
            "a node drain or a crash stops CCA VMI creation",
            fix=pods,
        )
    return Check(name, Status.OK, f"{ready} ready webhook pods")


def uses_cert_manager(snapshot: Snapshot) -> bool:
    """Whether cert-manager injects the CA (the annotation the default install sets); the
    self-signed install has none. Without any configuration to look at: the default."""
    configs = [r.value for r in (snapshot.mutating, snapshot.validating) if r.value is not None]
    if not configs:
        return True
    return any(dig(c, "metadata", "annotations", CA_INJECTION_ANNOTATION) for c in configs)


def check_admission_policies(snapshot: Snapshot, expected: Expected) -> Check:
    name = "admission policies"
    missing = []
    required = list(expected.policies)
    if not uses_cert_manager(snapshot):
        required += expected.self_signed_policies
    for key in required:
        read = snapshot.policies.get(key, Read())
        if read.error:
            return unreadable(name, f"{key[0]} {key[1]}", read)
        if read.value is None:
            missing.append(f"{key[0]} {key[1]} is missing")
    if missing:
        return Check(
            name,
            Status.FAIL,
            "in-API-server policies are missing: "
            "without them a labelled VMI could start as a plain VM when the webhooks are skipped, "
            "and the labeller could touch any node",
            tuple(missing),
            fix="re-apply the install; the API server must be Kubernetes 1.30 or newer "
            "(ValidatingAdmissionPolicy v1)",
        )
    pins = pin_problems(snapshot)
    if pins.refusing:
        return Check(
            name,
            Status.FAIL,
            "the policies pin another hook image or mode than kubevirt-cca-config: "
            "CCA VMIs that the webhook admits are refused by the policies",
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
    return Check(name, Status.OK, f"{len(required)} policies and bindings present")
