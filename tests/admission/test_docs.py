"""docs/vm-owners.md lists every message admission refuses with: generate each one and find it."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    HOOK_SIDECARS_ANNOTATION,
    INTEGRATION_ANNOTATION,
    LAUNCH_SECURITY_ANNOTATION,
    PLUGIN_NAME,
    PLUGINS_FEATURE_GATE,
    RESOLVED_ANNOTATION,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates, all_gates_on
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.validate import (
    judge_migration,
    validate_template,
    validate_vmi,
)
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.errors import Violation
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "vm-owners.md").read_text()


def _plugin_view(
    *,
    gates: set[str] | None = None,
    mode: IntegrationMode = IntegrationMode.AUTO,
    settings: Settings | None = None,
    plugins: frozenset[str] | None = frozenset({PLUGIN_NAME}),
) -> ClusterView:
    """A cluster in (or meant for) integration mode plugin."""
    return ClusterView(
        gates=FeatureGates(
            frozenset(gates if gates is not None else {CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE})
        ),
        settings=settings or Settings(dialect=Dialect.QEMU_COMMANDLINE),
        integration_mode=mode,
        plugin_names=plugins,
        plugins_problem="timeout",
    )


ON = ClusterView(gates=all_gates_on())
BASE: dict[str, Any] = {
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "x", "labels": {"cca.kubevirt.io/enabled": "true"}},
    "spec": {"domain": {"devices": {}}},
}


def _vmi(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(json.dumps(BASE))
    change(obj)
    return obj


def _annotate(key: str, value: str) -> Callable[[dict[str, Any]], object]:
    return lambda o: o["metadata"].setdefault("annotations", {}).update({key: value})


def _created() -> list[Violation]:
    cases: list[tuple[Callable[[dict[str, Any]], object], ClusterView]] = [
        (lambda o: o["metadata"]["labels"].update({"cca.kubevirt.io/enabled": "yes"}), ON),
        (lambda o: o["metadata"]["labels"].update({"cca.kubevirt.io/enabled": True}), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, "{"), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, "[]"), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, '{"x": 1}'), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, '{"measurementAlgo": "sha1"}'), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, '{"measurementLog": "on"}'), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, '{"personalizationValue": 1}'), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, '{"personalizationValue": "*"}'), ON),
        (_annotate(LAUNCH_SECURITY_ANNOTATION, '{"personalizationValue": "QUJD"}'), ON),
        (lambda o: o["spec"].update(architecture="amd64"), ON),
        (lambda o: o["spec"].update(evictionStrategy="LiveMigrate"), ON),
        (lambda o: o["spec"]["domain"]["devices"].update(autoattachMemBalloon=True), ON),
        (lambda o: o["spec"]["domain"].update(launchSecurity={"sev": {}}), ON),
        (lambda o: o["spec"].update(nodeSelector={"kubevirt.io/cca": "no"}), ON),
        (lambda o: o["spec"].update(nodeSelector="x"), ON),
        (lambda o: o["spec"].update(domain="x"), ON),
        (lambda o: o["spec"]["domain"].update(devices="x"), ON),
        (_annotate(HOOK_SIDECARS_ANNOTATION, "{"), ON),
        (_annotate(HOOK_SIDECARS_ANNOTATION, "{}"), ON),
        (_annotate(HOOK_SIDECARS_ANNOTATION, '[{"image": "i", "args": ["hook"]}]'), ON),
        (_annotate(HOOK_SIDECARS_ANNOTATION, '[{"image": "registry.example/mine:1"}]'), ON),
        (_annotate(RESOLVED_ANNOTATION, "{}"), ON),
        (lambda o: None, ClusterView(gates=FeatureGates(frozenset()))),
        (lambda o: None, ClusterView(gates=None, gates_problem="boom")),
        (lambda o: None, ClusterView(gates=all_gates_on(), config_problem="dialect: bad")),
        # integration mode (docs/plugins.md)
        (lambda o: None, _plugin_view(gates={CCA_FEATURE_GATE}, mode=IntegrationMode.PLUGIN)),
        (lambda o: None, _plugin_view(settings=Settings())),
        (lambda o: None, _plugin_view(plugins=frozenset())),
        (lambda o: None, _plugin_view(plugins=None)),
        (
            lambda o: None,
            _plugin_view(
                gates={CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE},
                mode=IntegrationMode.SIDECAR,
                settings=Settings(),
                plugins=frozenset({"other"}),
            ),
        ),
        (_annotate(HOOK_SIDECARS_ANNOTATION, '[{"image": "i", "args": ["hook"]}]'), _plugin_view()),
        (_annotate(INTEGRATION_ANNOTATION, "plugin"), ON),
        (_annotate(INTEGRATION_ANNOTATION, "sidecar"), _plugin_view()),
        (lambda o: None, dataclasses.replace(_plugin_view(), kubevirt_version="v1.9.0")),
        (lambda o: None, dataclasses.replace(_plugin_view(), kubevirt_version="")),
        # keys in the wrong place (core/vmi/placement.py)
        (lambda o: o["metadata"]["labels"].update({"cca.kubevirt.io/Enabled": "true"}), ON),
        (lambda o: o["metadata"]["labels"].update({"cca.kubevirt.io/enable": "true"}), ON),
        (
            lambda o: o["metadata"]["labels"].update(
                {"cca.kubevirt.io/measurement-algo-sha256": "true"}
            ),
            ON,
        ),
        (lambda o: o["metadata"]["labels"].update({LAUNCH_SECURITY_ANNOTATION: "x"}), ON),
        (_annotate("cca.kubevirt.io/enabled", "true"), ON),
        (
            _annotate(
                LAUNCH_SECURITY_ANNOTATION,
                '{"measurementAlgo": "sha256", "measurementAlgo": "sha512"}',
            ),
            ON,
        ),
    ]
    found = [v for change, cluster in cases for v in plan_vmi(_vmi(change), cluster).violations]
    found += validate_vmi(_vmi(lambda o: None), operation="CREATE", cluster=ON)
    unlabelled = _vmi(lambda o: o["metadata"].pop("labels"))
    found += plan_vmi(
        _vmi(
            lambda o: (o["metadata"].pop("labels"), _annotate(LAUNCH_SECURITY_ANNOTATION, "{}")(o))
        ),
        ON,
    ).violations
    found += plan_vmi(
        _vmi(lambda o: (o["metadata"].pop("labels"), _annotate(RESOLVED_ANNOTATION, "{}")(o))), ON
    ).violations
    return found + _misplaced() + _updates(unlabelled)


def _misplaced() -> list[Violation]:
    """Our keys on a VM's own metadata and on a pool's VM template (core/vmi/placement.py)."""
    vm = {
        "kind": "VirtualMachine",
        "metadata": {
            "name": "x",
            "labels": {"cca.kubevirt.io/enabled": "true"},
            "annotations": {RESOLVED_ANNOTATION: "{}"},
        },
        "spec": {"template": {"spec": BASE["spec"]}},
    }
    pool = {
        "kind": "VirtualMachinePool",
        "metadata": {"name": "x"},
        "spec": {
            "virtualMachineTemplate": {
                "metadata": {"labels": {"cca.kubevirt.io/enabled": "true"}},
                "spec": {"template": {"spec": BASE["spec"]}},
            }
        },
    }
    return [
        *validate_template(vm, operation="CREATE", cluster=ON),
        *validate_template(pool, operation="CREATE", cluster=ON),
    ]


def _updates(unlabelled: dict[str, Any]) -> list[Violation]:
    admitted = patches.apply(BASE, plan_vmi(BASE, ON).patch)
    found = validate_vmi(_vmi(lambda o: None), operation="UPDATE", cluster=ON, old=unlabelled)
    for key, value in (
        (LAUNCH_SECURITY_ANNOTATION, "{}"),
        (RESOLVED_ANNOTATION, "{}"),
        (HOOK_SIDECARS_ANNOTATION, "[]"),
    ):
        changed = json.loads(json.dumps(admitted))
        changed["metadata"]["annotations"][key] = value
        found += validate_vmi(changed, operation="UPDATE", cluster=ON, old=admitted)
    found += validate_vmi(unlabelled, operation="UPDATE", cluster=ON, old=admitted)
    appended = json.loads(json.dumps(admitted))
    entries = json.loads(appended["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION])
    appended["metadata"]["annotations"][HOOK_SIDECARS_ANNOTATION] = json.dumps(
        [*entries, {"image": "registry.example/mine:1"}]
    )
    found += validate_vmi(appended, operation="UPDATE", cluster=ON, old=admitted)
    migration = {"spec": {"vmiName": "x"}}
    found += judge_migration(migration, admitted).violations
    found += judge_migration(migration, None, lookup_problem="timeout").violations
    found += judge_migration({"spec": {}}, None).violations
    return found


MESSAGES = sorted({v.message for v in _created()})


def _fixed_part(message: str) -> str:
    """The longest stretch of a message between the values it quotes (the fixed wording)."""
    pieces = re.split(r"\([^)]*\)|[()'\"\[\]{}]|\d+", message)
    return max((p.strip() for p in pieces), key=len)


@pytest.mark.parametrize("message", MESSAGES, ids=[m[:40] for m in MESSAGES])
def test_every_message_is_in_the_vm_owners_page(message: str) -> None:
    fixed = _fixed_part(message)
    assert len(fixed) >= 15, message
    assert fixed in " ".join(DOC.split()), f"docs/vm-owners.md does not list: {message}"


def test_the_generator_covers_the_refusal_kinds() -> None:
    assert len(MESSAGES) >= 30
