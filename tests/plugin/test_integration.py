"""Integration mode selection: every combination of gates, Plugin objects, mode and dialect."""

from __future__ import annotations

from itertools import product

import pytest

from kubevirt_cca.constants import CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE, SIDECAR_FEATURE_GATE
from kubevirt_cca.core.cluster.integration import (
    IntegrationMode,
    ProblemCode,
    decide_mode,
    parse_mode,
)
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.errors import SettingsError

GATE_SETS = [
    frozenset({CCA_FEATURE_GATE}),
    frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE}),
    frozenset({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE}),
    frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE}),
]
PLUGINS = [(), ("kubevirt-cca",), ("someone-else",)]


# The last two: numbers int() cannot convert (issue 21 item 7) read as "not known".
VERSIONS = [None, "", "v1.9.2", "v1.10.0", "1.11.1", "v" + "1" * 5000 + ".10.0", "v1." + "2" * 5000]


@pytest.mark.parametrize(
    ("configured", "gates", "plugins", "dialect", "version"),
    list(product(IntegrationMode, GATE_SETS, PLUGINS, Dialect, VERSIONS)),
)
def test_every_combination(
    configured: IntegrationMode,
    gates: frozenset[str],
    plugins: tuple[str, ...],
    dialect: Dialect,
    version: str | None,
) -> None:
    decision = decide_mode(
        configured,
        gates=gates,
        plugin_names=plugins,
        settings=Settings(dialect=dialect),
        kubevirt_version=version,
    )
    plugins_on = PLUGINS_FEATURE_GATE in gates
    # auto follows the Plugins gate; explicit modes are kept
    expected = (
        configured
        if configured is not IntegrationMode.AUTO
        else (IntegrationMode.PLUGIN if plugins_on else IntegrationMode.SIDECAR)
    )
    assert decision.mode is expected
    text = " ".join(p.message for p in decision.problems)
    codes = {p.code for p in decision.problems}
    if expected is IntegrationMode.PLUGIN:
        assert ("Plugins feature gate" in text) == (not plugins_on)
        assert ("needs dialect qemu-commandline" in text) == (
            dialect is not Dialect.QEMU_COMMANDLINE
        )
        assert "Sidecar feature gate" not in text  # the plugin path needs no Sidecar gate
        assert (ProblemCode.PLUGINS_GATE_OFF in codes) == (not plugins_on)
        assert (ProblemCode.PLUGIN_NEEDS_QEMU_COMMANDLINE in codes) == (
            dialect is not Dialect.QEMU_COMMANDLINE
        )
        assert ProblemCode.SIDECAR_GATE_OFF not in codes
    else:
        assert ("Sidecar feature gate is not enabled" in text) == (
            SIDECAR_FEATURE_GATE not in gates
        )
        assert (ProblemCode.SIDECAR_GATE_OFF in codes) == (SIDECAR_FEATURE_GATE not in gates)
        mixed = plugins_on and bool(plugins)
        # A legacy hook's qemu:commandline survives the Plugins path's rebuild only from
        # KubeVirt 1.10: tolerated (a warning) only there; unknown or older: refused, since the
        # VM would otherwise start without its Realm arguments.
        survives = version in ("v1.10.0", "1.11.1")
        if dialect is Dialect.QEMU_COMMANDLINE and survives:
            assert "mixed state" not in text
            assert any("mixed state" in w.message for w in decision.warnings) == mixed
            assert [w.code for w in decision.warnings] == [ProblemCode.MIXED_STATE] * mixed
        else:
            assert ("mixed state" in text) == mixed
            assert (ProblemCode.MIXED_STATE in codes) == mixed
            assert not decision.warnings
    # a mode with no problem is one where a CCA VMI can work
    works = not decision.problems
    if works and expected is IntegrationMode.PLUGIN:
        assert plugins_on and dialect is Dialect.QEMU_COMMANDLINE
    if works and expected is IntegrationMode.SIDECAR:
        assert SIDECAR_FEATURE_GATE in gates


def test_auto_reason_names_the_gate() -> None:
    decision = decide_mode(
        IntegrationMode.AUTO,
        gates={PLUGINS_FEATURE_GATE},
        plugin_names=(),
        settings=Settings(dialect=Dialect.QEMU_COMMANDLINE),
    )
    assert decision.reason == "auto: KubeVirt's Plugins gate is on"


@pytest.mark.parametrize("value", ["sidecar", "plugin", "auto"])
def test_parse_mode(value: str) -> None:
    assert parse_mode(value).value == value


@pytest.mark.parametrize("value", ["Plugin", "", "hooks", 3, None])
def test_bad_mode(value: object) -> None:
    with pytest.raises(SettingsError, match="integrationMode: unknown value"):
        parse_mode(value)
