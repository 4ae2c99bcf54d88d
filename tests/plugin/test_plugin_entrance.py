"""The entrance to the mixed state: a Plugin object created while kubevirt-cca runs as a hook
sidecar (docs/plugins.md, "The mixed state"). The decision is the one VMI admission makes: a
Plugin object is refused exactly when a new CCA VMI would be refused for the mixed state once
that object exists."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    PLUGIN_NAME,
    PLUGINS_FEATURE_GATE,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission.admit import admit
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.plugin_object import (
    judge_kubevirt_update,
    judge_plugin_create,
    plugin_warnings,
    with_plugin,
)
from kubevirt_cca.core.admission.reviews import parse_review
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install.plugin_manifest import plugin_object
from kubevirt_cca.core.vmi.webhook_table import Endpoint
from tests.admission.helpers import labelled, review
from tests.conftest import ROOT

BOTH = frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE})
SIDECAR_ONLY = frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE})
QEMU = Settings(dialect=Dialect.QEMU_COMMANDLINE)
VMI = labelled(
    {
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"domain": {"devices": {}}},
    }
)


def view(
    *,
    mode: IntegrationMode = IntegrationMode.SIDECAR,
    gates: frozenset[str] = BOTH,
    settings: Settings = QEMU,
    version: str | None = "v1.9.0",
    plugins: frozenset[str] | None = frozenset(),
    **kwargs: Any,
) -> ClusterView:
    return ClusterView(
        gates=FeatureGates(gates),
        settings=settings,
        integration_mode=mode,
        plugin_names=plugins,
        kubevirt_version=version,
        **kwargs,
    )


def other_plugin(name: str = "someone-elses") -> dict[str, Any]:
    obj = plugin_object()
    obj["metadata"] = {"name": name}
    return obj


def messages(violations: Any) -> str:
    return " ".join(v.message for v in violations)


# --- the table ---------------------------------------------------------------------------------

REFUSED: dict[str, tuple[ClusterView, dict[str, Any], list[str]]] = {
    "sidecar-qemu-commandline-1.9": (
        view(),
        plugin_object(),
        [
            "creating Plugin kubevirt-cca would put the cluster in the mixed state",
            "integrationMode=sidecar",
            "drops the Realm's QEMU arguments",
            "would start as a plain VM",
            "this KubeVirt's version is 'v1.9.0'",
            "Move kubevirt-cca to plugin mode first",
            "upgrade KubeVirt to 1.10 or newer",
        ],
    ),
    "sidecar-qemu-commandline-version-unknown": (
        view(version=""),
        other_plugin(),
        [
            "Plugin someone-elses",
            "this KubeVirt's version is not known",
            "upgrade KubeVirt to 1.10 or newer",
        ],
    ),
    "sidecar-vep-1.10": (
        view(settings=Settings(), version="v1.10.0"),
        other_plugin(),
        [
            "refuses the Realm's <launchSecurity type='cca'>",
            "Move kubevirt-cca to plugin mode first",
        ],
    ),
    "sidecar-openeuler-1.9": (
        view(settings=Settings(dialect=Dialect.OPENEULER)),
        other_plugin(),
        ["dialect openeuler"],
    ),
    "already-mixed-another-one": (
        view(plugins=frozenset({"first"})),
        other_plugin("second"),
        ["would put the cluster in the mixed state"],
    ),
    "gates-unknown": (
        ClusterView(
            gates=None,
            gates_problem="no KubeVirt CR found in namespace kubevirt",
            integration_mode=IntegrationMode.SIDECAR,
        ),
        other_plugin(),
        [
            "cannot tell whether creating Plugin someone-elses",
            "no KubeVirt CR found",
            "fail closed",
        ],
    ),
    "plugins-unlistable": (
        view(plugins=None, plugins_problem="forbidden"),
        other_plugin(),
        ["cannot list KubeVirt's Plugin objects (forbidden)", "fail closed"],
    ),
    "config-invalid-hides-the-dialect": (
        view(version="v1.10.0", config_problem="dialect: unknown value 'x'"),
        other_plugin(),
        ["kubevirt-cca-config is invalid (dialect: unknown value 'x')", "fix the ConfigMap"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(case: str) -> None:
    cluster, plugin, phrases = REFUSED[case]
    violations = judge_plugin_create(plugin, cluster)
    assert [v.field for v in violations] == ["metadata.name"]
    for phrase in phrases:
        assert phrase in violations[0].message, (phrase, violations[0].message)
    if not case.startswith("sidecar-vep"):
        return
    assert "upgrade KubeVirt" not in violations[0].message  # 1.10 does not save launchSecurity


ADMITTED: dict[str, tuple[ClusterView, dict[str, Any]]] = {
    "plugin-mode-ours": (view(mode=IntegrationMode.PLUGIN), plugin_object()),
    "plugin-mode-gates-unknown": (
        ClusterView(
            gates=None, gates_problem="unreadable", integration_mode=IntegrationMode.PLUGIN
        ),
        plugin_object(),
    ),
    "auto-with-plugins-gate": (view(mode=IntegrationMode.AUTO), plugin_object()),
    "sidecar-plugins-gate-off": (view(gates=SIDECAR_ONLY), other_plugin()),
    "sidecar-qemu-commandline-1.10": (view(version="v1.10.0"), plugin_object()),
    "sidecar-qemu-commandline-1.11": (view(version="v1.11.2-3-gabc"), other_plugin()),
}


@pytest.mark.parametrize("case", list(ADMITTED))
def test_admitted(case: str) -> None:
    cluster, plugin = ADMITTED[case]
    assert judge_plugin_create(plugin, cluster) == []


def test_the_tolerated_mixed_state_is_admitted_with_a_warning() -> None:
    warned = plugin_warnings(plugin_object(), view(version="v1.10.0"))
    assert len(warned) == 1
    assert warned[0].startswith(
        "mixed state: KubeVirt's Plugins gate is on and Plugin objects exist (kubevirt-cca)"
    )
    assert plugin_warnings(plugin_object(), view(mode=IntegrationMode.PLUGIN)) == []
    assert plugin_warnings(plugin_object(), view(gates=SIDECAR_ONLY)) == []


# --- one rule: the same decision as VMI admission ----------------------------------------------

STATES = list(
    itertools.product(
        [IntegrationMode.SIDECAR, IntegrationMode.AUTO, IntegrationMode.PLUGIN],
        [BOTH, SIDECAR_ONLY, frozenset({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE})],
        list(Dialect),
        [None, "", "v1.9.0", "v1.10.0"],
        [frozenset(), frozenset({"first"}), frozenset({PLUGIN_NAME})],
    )
)


@pytest.mark.parametrize(
    "state",
    STATES,
    ids=lambda s: "-".join(
        str(p if not isinstance(p, frozenset) else "+".join(sorted(p)) or "none") for p in s
    ),
)
def test_a_plugin_is_refused_exactly_when_a_cca_vmi_would_be_for_the_mixed_state(
    state: tuple[IntegrationMode, frozenset[str], Dialect, str | None, frozenset[str]],
) -> None:
    mode, gates, dialect, version, existing = state
    cluster = view(
        mode=mode,
        gates=gates,
        settings=Settings(dialect=dialect),
        version=version,
        plugins=existing,
    )
    refused = judge_plugin_create(other_plugin(), cluster) != []
    after = with_plugin(cluster, "someone-elses")
    vmi_refusals = plan_vmi(VMI, after).violations
    vmi_refused_for_mixed_state = any(v.message.startswith("mixed state:") for v in vmi_refusals)
    assert refused == vmi_refused_for_mixed_state, (state, [v.message for v in vmi_refusals])


# --- the endpoint ------------------------------------------------------------------------------


def plugin_review(obj: dict[str, Any], operation: str = "CREATE") -> bytes:
    body = review(obj, operation=operation, old=obj if operation != "CREATE" else None)
    body["request"]["kind"] = {
        "group": "plugin.kubevirt.io",
        "version": "v1alpha1",
        "kind": "Plugin",
    }
    body["request"]["resource"] = {
        "group": "plugin.kubevirt.io",
        "version": "v1alpha1",
        "resource": "plugins",
    }
    body["request"]["namespace"] = ""
    return json.dumps(body).encode()


def test_the_endpoint_refuses_creates_only() -> None:
    refused = admit(Endpoint.VALIDATE_PLUGIN, parse_review(plugin_review(plugin_object())), view())
    assert refused.response["allowed"] is False
    status = refused.response["status"]
    assert status["code"] == 422
    assert status["message"].startswith(
        "metadata.name: creating Plugin kubevirt-cca would put the cluster in the mixed state"
    )
    for operation in ("UPDATE", "DELETE"):
        verdict = admit(
            Endpoint.VALIDATE_PLUGIN,
            parse_review(plugin_review(plugin_object(), operation)),
            view(),
        )
        assert verdict.response["allowed"] is True, operation
    admitted = admit(
        Endpoint.VALIDATE_PLUGIN,
        parse_review(plugin_review(plugin_object())),
        view(mode=IntegrationMode.PLUGIN),
    )
    assert admitted.response["allowed"] is True
    assert "warnings" not in admitted.response


def test_the_endpoint_answers_only_plugins() -> None:
    verdict = admit(
        Endpoint.VALIDATE_PLUGIN, parse_review(json.dumps(review(VMI)).encode()), view()
    )
    assert verdict.response["allowed"] is False
    assert verdict.response["status"]["code"] == 400


def test_plugins_md_quotes_the_refusal_word_for_word() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text.split("### Creating a Plugin object in sidecar mode is refused", 1)[1]
    quoted = " ".join(section.split("```", 2)[1].split())
    message = judge_plugin_create(plugin_object(), view())[0].message
    assert quoted == f"The request is invalid: metadata.name: {message}"


# --- the other entrance: the KubeVirt CR turns the Plugins gate on -----------------------------


def kubevirt(
    gates: list[str], *, version: str | None = None, name: str = "kubevirt"
) -> dict[str, Any]:
    cr: dict[str, Any] = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": name, "namespace": "kubevirt"},
        "spec": {"configuration": {"developerConfiguration": {"featureGates": gates}}},
    }
    if version is not None:
        cr["status"] = {"observedKubeVirtVersion": version}
    return cr


OFF = ["WorkloadEncryptionCCA", "Sidecar"]
ON = [*OFF, "Plugins"]


def before(
    *,
    plugins: frozenset[str] | None = frozenset({"someone-elses"}),
    settings: Settings = QEMU,
    mode: IntegrationMode = IntegrationMode.SIDECAR,
    gates: list[str] = OFF,
) -> ClusterView:
    return view(
        mode=mode,
        gates=frozenset({CCA_FEATURE_GATE, *gates} - {"WorkloadEncryptionCCA"}),
        settings=settings,
        version="v1.9.0",
        plugins=plugins,
        kubevirt=kubevirt(gates, version="v1.9.0"),
    )


GATE_REFUSED: dict[str, tuple[ClusterView, dict[str, Any], list[str]]] = {
    "qemu-commandline-1.9": (
        before(),
        kubevirt(ON, version="v1.9.0"),
        [
            "turning on KubeVirt's Plugins gate while Plugin objects exist (someone-elses) would "
            "put the cluster in the mixed state",
            "this KubeVirt's version is 'v1.9.0'",
            "upgrade KubeVirt to 1.10 or newer",
        ],
    ),
    "vep": (
        before(settings=Settings()),
        kubevirt(ON, version="v1.10.0"),
        ["with dialect vep that rebuild refuses"],
    ),
}


@pytest.mark.parametrize("case", list(GATE_REFUSED))
def test_turning_the_plugins_gate_on_is_refused(case: str) -> None:
    cluster, cr, phrases = GATE_REFUSED[case]
    violations = judge_kubevirt_update(cr, cluster)
    assert [v.field for v in violations] == [
        "spec.configuration.developerConfiguration.featureGates"
    ]
    for phrase in phrases:
        assert phrase in violations[0].message, (phrase, violations[0].message)


GATE_ADMITTED: dict[str, tuple[ClusterView, dict[str, Any]]] = {
    "no-plugin-objects": (before(plugins=frozenset()), kubevirt(ON)),
    "plugin-mode": (before(mode=IntegrationMode.PLUGIN), kubevirt(ON)),
    "auto-mode": (before(mode=IntegrationMode.AUTO), kubevirt(ON)),
    "upgrade-to-1.10-together": (before(), kubevirt(ON, version="v1.10.0")),
    "gate-stays-off": (before(), kubevirt([*OFF, "Snapshot"])),
    "already-mixed": (before(gates=ON), kubevirt([*ON, "Snapshot"])),
    "another-cr": (before(), kubevirt(ON, name="second")),
    "plugins-unlistable": (before(plugins=None), kubevirt(ON)),
    "malformed-gates": (
        before(),
        {
            **kubevirt(ON),
            "spec": {"configuration": {"developerConfiguration": {"featureGates": "Plugins"}}},
        },
    ),
}


@pytest.mark.parametrize("case", list(GATE_ADMITTED))
def test_other_kubevirt_updates_pass(case: str) -> None:
    cluster, cr = GATE_ADMITTED[case]
    assert judge_kubevirt_update(cr, cluster) == []


def test_the_kubevirt_endpoint_judges_updates_only() -> None:
    def kv_review(operation: str) -> bytes:
        body = review(
            kubevirt(ON), operation=operation, old=kubevirt(OFF) if operation == "UPDATE" else None
        )
        body["request"]["kind"] = {"group": "kubevirt.io", "version": "v1", "kind": "KubeVirt"}
        return json.dumps(body).encode()

    refused = admit(Endpoint.VALIDATE_KUBEVIRT, parse_review(kv_review("UPDATE")), before())
    assert refused.response["allowed"] is False
    assert refused.response["status"]["message"].startswith(
        "spec.configuration.developerConfiguration.featureGates: turning on KubeVirt's Plugins "
        "gate while Plugin objects exist (someone-elses)"
    )
    created = admit(Endpoint.VALIDATE_KUBEVIRT, parse_review(kv_review("CREATE")), before())
    assert created.response["allowed"] is True
