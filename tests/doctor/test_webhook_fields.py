"""doctor compares every field of our webhooks with what ``manifests`` renders (issue 21, item 5).

The configurations here are the rendered ones as the API server stores them: its defaults
filled in (tests/peers/apiserver/test_doctor.py shows the same on the real API server), then
one field changed per case. Each case must give exactly one line, naming the webhook, the
field, what was found and what is expected.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.core.doctor import Expected, Read, Status
from kubevirt_cca.core.doctor.webhooks import check_webhook_configurations
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.webhook_manifests import webhook_configurations
from tests.doctor.cluster import empty_snapshot

MUTATE = "mutate-vmi.cca.kubevirt.io"
POD = "mutate-launcher-pod.cca.kubevirt.io"
VALIDATE = "validate-vmi.cca.kubevirt.io"
TEMPLATES = "validate-templates.cca.kubevirt.io"


def stored() -> dict[str, dict[str, Any]]:
    """The rendered configurations as the API server keeps them: a caBundle, and its defaults
    written out (the test's own list, not doctor's)."""
    configs = {c["kind"]: copy.deepcopy(c) for c in webhook_configurations(InstallOptions())}
    for kind, config in configs.items():
        for hook in config["webhooks"]:
            hook["clientConfig"]["caBundle"] = "Q0E="
            hook.setdefault("namespaceSelector", {})
            hook.setdefault("objectSelector", {})
            if kind.startswith("Mutating"):
                hook.setdefault("reinvocationPolicy", "Never")
    return configs


def check(configs: dict[str, dict[str, Any]]) -> Any:
    snapshot = empty_snapshot(
        mutating=Read(value=configs["MutatingWebhookConfiguration"]),
        validating=Read(value=configs["ValidatingWebhookConfiguration"]),
    )
    return check_webhook_configurations(snapshot, Expected(options=InstallOptions()))


def hook(configs: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    kind = "Mutating" if name.startswith("mutate-") else "Validating"
    found: dict[str, Any] = next(
        h for h in configs[f"{kind}WebhookConfiguration"]["webhooks"] if h["name"] == name
    )
    return found


def test_the_install_as_stored_is_clean() -> None:
    result = check(stored())
    assert result.status is Status.OK, result.details
    assert result.details == ()


def test_defaults_left_unset_are_no_difference() -> None:
    """Fields rendered with the API server's default value, unset by another writer: the
    same install (the API server would store the same object)."""
    configs = {c["kind"]: copy.deepcopy(c) for c in webhook_configurations(InstallOptions())}
    for config in configs.values():
        for h in config["webhooks"]:
            h["clientConfig"]["caBundle"] = "Q0E="
            h.pop("matchPolicy")
            h.pop("timeoutSeconds")
    assert check(configs).status is Status.OK


Change = Callable[[dict[str, Any]], None]
CASES: list[tuple[str, str, Change, str]] = [
    (
        VALIDATE,
        "rules",
        lambda h: h["rules"][0].update(operations=["CREATE"]),
        'rules is [{"apiGroups":["kubevirt.io"],"apiVersions":["v1"],"operations":["CREATE"],'
        '"resources":["virtualmachineinstances"],"scope":"Namespaced"}], expected '
        '[{"apiGroups":["kubevirt.io"],"apiVersions":["v1"],"operations":["CREATE","UPDATE"],'
        '"resources":["virtualmachineinstances"],"scope":"Namespaced"}]',
    ),
    (
        MUTATE,
        "rules",
        lambda h: h["rules"][0].update(apiGroups=["other.io"]),
        'rules is [{"apiGroups":["other.io"]',
    ),
    (
        MUTATE,
        "rules",
        lambda h: h["rules"][0].update(apiVersions=["v1beta1"]),
        '"apiVersions":["v1beta1"]',
    ),
    (
        POD,
        "rules",
        lambda h: h["rules"][0].update(resources=["pods/status"]),
        '"resources":["pods/status"]',
    ),
    (
        TEMPLATES,
        "rules",
        lambda h: h["rules"][1].update(scope="Cluster"),
        '"scope":"Cluster"',
    ),
    (
        TEMPLATES,
        "rules",
        lambda h: h["rules"].pop(),
        'rules is [{"apiGroups":["kubevirt.io"]',
    ),
    (
        VALIDATE,
        "namespaceSelector",
        lambda h: h.update(namespaceSelector={"matchLabels": {"team": "a"}}),
        'namespaceSelector is {"matchLabels":{"team":"a"}}, expected {}',
    ),
    (
        POD,
        "objectSelector",
        lambda h: h["objectSelector"]["matchExpressions"].pop(),
        'objectSelector is {"matchExpressions":[{"key":"cca.kubevirt.io/enabled",'
        '"operator":"Exists"}]}, expected {"matchExpressions":[{"key":"cca.kubevirt.io/enabled",'
        '"operator":"Exists"},{"key":"kubevirt.io","operator":"In","values":["virt-launcher"]}]}',
    ),
    (
        TEMPLATES,
        "objectSelector",
        lambda h: h.update(objectSelector={"matchLabels": {"x": "y"}}),
        'objectSelector is {"matchLabels":{"x":"y"}}, expected {}',
    ),
    (
        MUTATE,
        "matchConditions",
        lambda h: h.update(matchConditions=[{"name": "never", "expression": "false"}]),
        'matchConditions is [{"expression":"false","name":"never"}], expected []',
    ),
    (
        VALIDATE,
        "matchPolicy",
        lambda h: h.update(matchPolicy="Exact"),
        'matchPolicy is "Exact", expected "Equivalent"',
    ),
    (
        TEMPLATES,
        "sideEffects",
        lambda h: h.update(sideEffects="NoneOnDryRun"),
        'sideEffects is "NoneOnDryRun", expected "None"',
    ),
    (
        VALIDATE,
        "timeoutSeconds",
        lambda h: h.update(timeoutSeconds=30),
        "timeoutSeconds is 30, expected 10",
    ),
    (
        MUTATE,
        "reinvocationPolicy",
        lambda h: h.update(reinvocationPolicy="Never"),
        'reinvocationPolicy is "Never", expected "IfNeeded"',
    ),
    (
        VALIDATE,
        "admissionReviewVersions",
        lambda h: h.update(admissionReviewVersions=["v1beta1"]),
        'admissionReviewVersions is ["v1beta1"], expected ["v1"]',
    ),
]


@pytest.mark.parametrize(
    ("webhook", "field", "change", "line"),
    CASES,
    ids=[f"{w.split('.')[0]}-{f}-{i}" for i, (w, f, _, _) in enumerate(CASES)],
)
def test_each_changed_field_is_one_line(
    webhook: str, field: str, change: Change, line: str
) -> None:
    configs = stored()
    change(hook(configs, webhook))
    result = check(configs)
    assert result.status is Status.FAIL
    assert len(result.details) == 1, result.details
    assert result.details[0].startswith(f"{webhook}: {field} is ")
    assert line in result.details[0]
    assert result.summary.startswith("1 problem(s)")
    assert result.fix and "re-apply the install" in result.fix


def test_a_webhook_of_ours_missing_and_a_foreign_one_added() -> None:
    configs = stored()
    webhooks = configs["ValidatingWebhookConfiguration"]["webhooks"]
    webhooks.remove(hook(configs, TEMPLATES))
    webhooks.append({**copy.deepcopy(webhooks[0]), "name": "extra.example.com"})
    result = check(configs)
    assert result.status is Status.FAIL
    assert result.details == (
        f"ValidatingWebhookConfiguration kubevirt-cca has no webhook {TEMPLATES}",
        "ValidatingWebhookConfiguration kubevirt-cca has a webhook extra.example.com that "
        "kubevirt-cca does not ship: the API server calls it for the same objects; delete it "
        "(another product's webhook belongs in a configuration of its own)",
    )


def test_a_removed_object_selector_is_said_once_with_what_it_means() -> None:
    configs = stored()
    del hook(configs, MUTATE)["objectSelector"]
    assert check(configs).details == (
        f"{MUTATE}: objectSelector does not select exactly the VMIs labelled "
        "cca.kubevirt.io/enabled",
    )


def test_the_service_port_is_compared() -> None:
    configs = stored()
    hook(configs, VALIDATE)["clientConfig"]["service"]["port"] = 8443
    assert check(configs).details == (f"{VALIDATE}: calls service port 8443, expected 443",)


def test_several_fields_of_several_webhooks_are_all_reported() -> None:
    configs = stored()
    hook(configs, MUTATE)["timeoutSeconds"] = 1
    hook(configs, MUTATE)["matchPolicy"] = "Exact"
    hook(configs, VALIDATE)["sideEffects"] = "Some"
    result = check(configs)
    assert result.details == (
        f'{MUTATE}: matchPolicy is "Exact", expected "Equivalent"',
        f"{MUTATE}: timeoutSeconds is 1, expected 10",
        f'{VALIDATE}: sideEffects is "Some", expected "None"',
    )


def test_the_certificate_identitys_policies_are_expected_only_when_self_signed() -> None:
    """doctor requires kubevirt-cca-certs-* where the install has them (no CA injection)."""
    import argparse
    import dataclasses

    from kubevirt_cca.cli.doctor import expected_from_args
    from kubevirt_cca.core.doctor.webhooks import check_admission_policies

    expected = expected_from_args(
        argparse.Namespace(namespace="kubevirt-cca", kubevirt_namespace="kubevirt")
    )
    assert {name for _, name in expected.self_signed_policies} == {
        "kubevirt-cca-certs-ca-bundle-only",
        "kubevirt-cca-certs-secret-name",
    }
    # the policies as the install renders them (the rendered hook image and mode are checked
    # against the ConfigMap's, which is absent here: the defaults)
    rendered = {
        (str(obj["kind"]), str(obj["metadata"]["name"])): obj
        for obj in install_objects(expected.options, load_policies())
    }
    present = {key: Read(value=rendered[key]) for key in expected.policies}
    configs = stored()
    annotated = dataclasses.replace(
        empty_snapshot(
            mutating=Read(value=configs["MutatingWebhookConfiguration"]),
            validating=Read(value=configs["ValidatingWebhookConfiguration"]),
        ),
        policies=present,
    )
    assert check_admission_policies(annotated, expected).status is Status.OK
    for config in configs.values():
        del config["metadata"]["annotations"]  # the self-signed install: no CA injection
    self_signed = dataclasses.replace(
        empty_snapshot(
            mutating=Read(value=configs["MutatingWebhookConfiguration"]),
            validating=Read(value=configs["ValidatingWebhookConfiguration"]),
        ),
        policies=present,
    )
    result = check_admission_policies(self_signed, expected)
    assert result.status is Status.FAIL
    assert result.details == tuple(
        f"{kind} {name} is missing" for kind, name in expected.self_signed_policies
    )
