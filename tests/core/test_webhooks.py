"""The webhook table: one entry per endpoint, and names and paths the API server can tell apart."""

from __future__ import annotations

from kubevirt_cca.core.install.names import InstallOptions
from kubevirt_cca.core.install.webhook_manifests import webhook_configurations
from kubevirt_cca.core.vmi.webhook_table import BY_ENDPOINT, WEBHOOKS, Endpoint


def test_every_endpoint_has_one_entry() -> None:
    assert [hook.endpoint for hook in WEBHOOKS] == list(Endpoint)
    assert set(BY_ENDPOINT) == set(Endpoint)
    assert len({hook.name for hook in WEBHOOKS}) == len({hook.path for hook in WEBHOOKS}) == 7


def test_the_rendered_configurations_carry_exactly_the_table() -> None:
    rendered = {
        hook["name"]: (
            config["kind"],
            hook["clientConfig"]["service"]["path"],
            hook["failurePolicy"],
        )
        for config in webhook_configurations(InstallOptions())
        for hook in config["webhooks"]
    }
    assert rendered == {
        hook.name: (
            "MutatingWebhookConfiguration" if hook.mutating else "ValidatingWebhookConfiguration",
            hook.path,
            hook.failure_policy,
        )
        for hook in WEBHOOKS
    }


def test_only_cca_objects_fail_closed_by_selector() -> None:
    """docs/admin.md, "Failure policies": a webhook that sees every object must not block them
    all while it is down, except Plugin creation (rare, docs/admission.md)."""
    for hook in WEBHOOKS:
        if hook.selector == "none" and hook.endpoint is not Endpoint.VALIDATE_PLUGIN:
            assert hook.failure_policy == "Ignore", hook.name
        if hook.selector != "none":
            assert hook.failure_policy == "Fail", hook.name
