"""Self-signed mode: two policies that fence the certificate identity (``kubevirt-cca-certs``).

RBAC lets it get and patch the two webhook configurations named ``kubevirt-cca``, and create
Secrets (``create`` cannot be limited by name: the API server knows no name before the object
exists). Its job needs less, and these ValidatingAdmissionPolicies, matched to its user name,
say so in the API server:

- ``kubevirt-cca-certs-ca-bundle-only``: on an update of a Mutating- or
  ValidatingWebhookConfiguration, everything but each webhook's ``clientConfig.caBundle`` stays
  as it was: the same webhooks in the same order, every other field of each (URL or Service,
  rules, selectors, failurePolicy, ... and fields a later Kubernetes adds: the comparison is
  over all keys), and the metadata an admin sets (labels, annotations, owners, finalizers). It
  may not create or delete a webhook configuration either.
- ``kubevirt-cca-certs-secret-name``: the only Secret it may create, update or delete is the
  serving certificate's, ``kubevirt-cca-webhook-tls`` in the install namespace.

docs/admin.md ("The certificate identity") says why a policy and not a pre-created Secret.
"""

from __future__ import annotations

from kubevirt_cca.core.install.names import (
    CERTS,
    CERTS_SECRET_POLICY,
    CERTS_WEBHOOK_POLICY,
    SELF_SIGNED,
    TLS_SECRET,
    InstallOptions,
    Manifest,
    service_account_user,
)
from kubevirt_cca.core.install.rbac import ADMISSION_GROUP
from kubevirt_cca.core.install.restriction import or_empty, resource_rule, service_account_policy

CONFIGURATIONS = ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]


def _same_client_config(old: str, new: str) -> str:
    """CEL: the ``clientConfig`` of webhooks ``old`` and ``new`` are the same but for
    ``caBundle`` (which may be set, changed or removed)."""
    old_cc, new_cc = f"{old}.clientConfig", f"{new}.clientConfig"
    return (
        f"({old_cc}.all(c, c == 'caBundle' || c in {new_cc}) && {new_cc}.all(c, c == 'caBundle' || "
        f"(c in {old_cc} && {old_cc}[c] == {new_cc}[c])))"
    )


def _same_but_ca_bundle(old: str, new: str) -> str:
    """CEL: webhooks ``old`` and ``new`` have the same keys and values, but for
    ``clientConfig.caBundle``."""
    return (
        f"{old}.all(k, k in {new}) && {new}.all(k, k in {old} && "
        f"(k == 'clientConfig' ? {_same_client_config(old, new)} : {old}[k] == {new}[k]))"
    )


def _changed_fields(old: str, new: str) -> str:
    """CEL: the names of the fields that differ between webhooks ``old`` and ``new``, caBundle
    aside (``clientConfig`` counts as one field)."""
    return (
        f"({new}.filter(k, !(k in {old}) || (k == 'clientConfig' ? "
        f"!{_same_client_config(old, new)} : {old}[k] != {new}[k])) + {old}.filter(k, "
        f"!(k in {new})))"
    )


# The metadata an admin (or the install) sets, and what each is when absent.
METADATA_FIELDS = {"labels": "{}", "annotations": "{}", "ownerReferences": "[]", "finalizers": "[]"}


def _webhook_configurations_policy(user: str) -> list[Manifest]:
    update = "request.operation == 'UPDATE'"
    variables = [
        {"name": "newHooks", "expression": or_empty("object", "webhooks", "[]")},
        {"name": "oldHooks", "expression": or_empty("oldObject", "webhooks", "[]")},
        {
            # Each changed webhook as "name (field, field)".
            "name": "changed",
            "expression": (
                "variables.newHooks.filter(h, variables.oldHooks.exists(o, "
                f"o.name == h.name && !({_same_but_ca_bundle('o', 'h')}))).map(h, h.name + ' "
                "(' + variables.oldHooks.filter(o, "
                f"o.name == h.name).map(o, {_changed_fields('o', 'h')}.join(', '))[0] + ')')"
            ),
        },
        {
            "name": "changedMetadata",
            "expression": "["
            + ", ".join(f"'{f}'" for f in METADATA_FIELDS)
            + "].filter(f, ("
            + " || ".join(
                f"(f == '{f}' && ({or_empty('object.metadata', f, empty)}) != "
                f"({or_empty('oldObject.metadata', f, empty)}))"
                for f, empty in METADATA_FIELDS.items()
            )
            + "))",
        },
    ]
    validations = [
        {
            "expression": update,
            "messageExpression": (
                f"'{CERTS} may only update the caBundle of a webhook configuration, not ' + "
                "(request.operation == 'CREATE' ? 'create' : 'delete') + ' one'"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": (
                f"!({update}) || variables.newHooks.map(h, h.name) == variables.oldHooks.map(h, "
                "h.name)"
            ),
            "messageExpression": (
                f"'{CERTS} may not add, remove, rename or reorder webhooks: "
                "they were [' + variables.oldHooks.map(h, h.name).join(', ') + '], "
                "the update has [' + variables.newHooks.map(h, h.name).join(', ') + ']'"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": f"!({update}) || size(variables.changed) == 0",
            "messageExpression": (
                f"'{CERTS} may change only clientConfig.caBundle of a webhook; changed: "
                "' + variables.changed.join('; ')"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": f"!({update}) || size(variables.changedMetadata) == 0",
            "messageExpression": (
                f"'{CERTS} may not change a webhook configuration\\'s metadata: "
                "' + variables.changedMetadata.join(', ')"
            ),
            "reason": "Forbidden",
        },
    ]
    return service_account_policy(
        CERTS_WEBHOOK_POLICY,
        component="certs",
        user=user,
        rules=[resource_rule(ADMISSION_GROUP, CONFIGURATIONS, ["CREATE", "UPDATE", "DELETE"])],
        variables=variables,
        validations=validations,
    )


def _secret_policy(user: str, namespace: str) -> list[Manifest]:
    validations = [
        {
            "expression": (f"request.namespace == '{namespace}' && request.name == '{TLS_SECRET}'"),
            "messageExpression": (
                f"'{CERTS} may only write the Secret {namespace}/{TLS_SECRET}, "
                "not ' + request.namespace + '/' + request.name"
            ),
            "reason": "Forbidden",
        }
    ]
    return service_account_policy(
        CERTS_SECRET_POLICY,
        component="certs",
        user=user,
        rules=[resource_rule("", ["secrets"], ["CREATE", "UPDATE", "DELETE"])],
        variables=[],
        validations=validations,
    )


def certs_restriction(options: InstallOptions) -> list[Manifest]:
    """Self-signed mode: both policies and their bindings; none with cert-manager."""
    if options.certificates != SELF_SIGNED:
        return []
    user = service_account_user(options.namespace, CERTS)
    return [*_webhook_configurations_policy(user), *_secret_policy(user, options.namespace)]
