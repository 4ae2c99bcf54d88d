"""Which KubeVirt extension point carries the Realm set-up: hook sidecars or Plugins (VEP 190).

Admins choose with ``integrationMode`` in kubevirt-cca-config:

* ``sidecar`` — the legacy hook sidecar, attached through ``hooks.kubevirt.io/hookSidecars``;
  needs KubeVirt's ``Sidecar`` gate.
* ``plugin`` — a KubeVirt Plugin whose domain hook is our sidecar container, injected into the
  virt-launcher pod; needs KubeVirt's ``Plugins`` gate and the ``qemu-commandline`` dialect (on
  this path KubeVirt rebuilds the domain through a library that knows no CCA launchSecurity).
* ``auto`` (default) — ``plugin`` when the KubeVirt CR enables ``Plugins``, else ``sidecar``.

The *mixed state* — Plugins gate on, any Plugin object present, legacy sidecar mode — breaks
Realms: KubeVirt regenerates every domain through the Plugins path and drops (or refuses) what
the legacy hook wrote. :func:`decide_mode` reports it as a problem, so admission refuses new CCA
VMIs with a message that says what to change instead of letting them fail at start.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from kubevirt_cca.constants import PLUGINS_FEATURE_GATE, SIDECAR_FEATURE_GATE
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.errors import SettingsError

INTEGRATION_MODE_KEY = "integrationMode"
# From this KubeVirt release on, a legacy hook's <qemu:commandline> survives the Plugins path's
# rebuild of the domain; before it, the rebuild drops it (and with it the Realm).
LEGACY_COMMANDLINE_SURVIVES = (1, 10)
# Digits bounded, so int() never meets 4,300 of them (a longer number: version not known).
_VERSION = re.compile(r"\Av?(\d{1,9})\.(\d{1,9})(?!\d)")


class IntegrationMode(StrEnum):
    """The configured mode (``auto`` resolves to one of the other two)."""

    SIDECAR = "sidecar"
    PLUGIN = "plugin"
    AUTO = "auto"


def parse_mode(value: object) -> IntegrationMode:
    """The mode from ConfigMap text; :class:`SettingsError` naming the choices otherwise."""
    try:
        return IntegrationMode(str(value)) if isinstance(value, str) else IntegrationMode("")
    except ValueError:
        names = ", ".join(m.value for m in IntegrationMode)
        raise SettingsError(
            f"{INTEGRATION_MODE_KEY}: unknown value {value!r}; expected one of {names}"
        ) from None


class ProblemCode(StrEnum):
    """What a mode problem is about, for whoever reports it (never match on the message)."""

    SIDECAR_GATE_OFF = "sidecar-gate-off"
    PLUGINS_GATE_OFF = "plugins-gate-off"
    PLUGIN_NEEDS_QEMU_COMMANDLINE = "plugin-needs-qemu-commandline"
    MIXED_STATE = "mixed-state"
    PLUGINS_UNLISTABLE = "plugins-unlistable"
    PLUGIN_OBJECT_MISSING = "plugin-object-missing"


# The problems that are a feature gate being off: the gate checks report those in their words.
GATE_PROBLEMS = frozenset({ProblemCode.SIDECAR_GATE_OFF, ProblemCode.PLUGINS_GATE_OFF})


@dataclass(frozen=True)
class Problem:
    """One thing that stops (or, as a warning, endangers) CCA VMIs in the mode in force."""

    code: ProblemCode
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ModeDecision:
    """The mode in force, why, and what stops CCA VMIs from working in it (empty: fine)."""

    mode: IntegrationMode
    reason: str
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()


def decide_mode(
    configured: IntegrationMode,
    *,
    gates: Collection[str],
    plugin_names: Collection[str],
    settings: Settings,
    kubevirt_version: str | None = None,
) -> ModeDecision:
    """Resolve ``auto`` and check the chosen mode against the cluster.

    ``gates`` are KubeVirt's enabled feature gates; ``plugin_names`` the Plugin objects that
    exist (ours included); ``kubevirt_version`` the KubeVirt CR's
    ``status.observedKubeVirtVersion`` (``None`` or unreadable: not known).
    """
    plugins_on = PLUGINS_FEATURE_GATE in gates
    if configured is IntegrationMode.AUTO:
        mode = IntegrationMode.PLUGIN if plugins_on else IntegrationMode.SIDECAR
        reason = f"auto: KubeVirt's {PLUGINS_FEATURE_GATE} gate is {'on' if plugins_on else 'off'}"
    else:
        mode = configured
        reason = f"configured: {INTEGRATION_MODE_KEY}={configured.value}"
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if mode is IntegrationMode.PLUGIN:
        if not plugins_on:
            problems.append(
                Problem(
                    ProblemCode.PLUGINS_GATE_OFF,
                    f"integration mode plugin needs KubeVirt's {PLUGINS_FEATURE_GATE} feature "
                    "gate, which is not enabled in kubevirt-config",
                )
            )
        if settings.dialect is not Dialect.QEMU_COMMANDLINE:
            problems.append(
                Problem(
                    ProblemCode.PLUGIN_NEEDS_QEMU_COMMANDLINE,
                    f"integration mode plugin needs dialect {Dialect.QEMU_COMMANDLINE.value} "
                    "(KubeVirt's Plugins path refuses <launchSecurity type='cca'>); "
                    f"kubevirt-cca-config sets dialect {settings.dialect.value}",
                )
            )
    else:
        if SIDECAR_FEATURE_GATE not in gates:
            problems.append(
                Problem(
                    ProblemCode.SIDECAR_GATE_OFF,
                    f"{SIDECAR_FEATURE_GATE} feature gate is not enabled in kubevirt-config "
                    "(the Realm set-up runs as a KubeVirt hook sidecar)",
                )
            )
        if plugins_on and plugin_names:
            names = ", ".join(sorted(plugin_names))
            message = (
                "mixed state: "
                f"KubeVirt's {PLUGINS_FEATURE_GATE} gate is on and Plugin objects exist ({names}), "
                "so KubeVirt rebuilds every domain through its Plugins path, "
                "which drops the legacy hook's Realm settings; set integrationMode to plugin "
                "(or auto) in kubevirt-cca-config, or remove the Plugin objects"
            )
            survives = _at_least(kubevirt_version, LEGACY_COMMANDLINE_SURVIVES)
            if settings.dialect is Dialect.QEMU_COMMANDLINE and survives:
                # qemu:commandline survives the Plugins path from KubeVirt 1.10 on.
                warnings.append(
                    Problem(
                        ProblemCode.MIXED_STATE,
                        message
                        + (
                            " "
                            "(the qemu-commandline dialect survives it only on KubeVirt 1.10 and "
                            "newer)"
                        ),
                    )
                )
            elif settings.dialect is Dialect.QEMU_COMMANDLINE:
                # Before 1.10 (or not knowing the version) the rebuild would drop the Realm's
                # QEMU arguments and the VM would start as a plain VM: refuse (fail closed).
                shown = repr(kubevirt_version) if kubevirt_version else "not known"
                problems.append(
                    Problem(
                        ProblemCode.MIXED_STATE,
                        message
                        + (
                            " "
                            "(the qemu-commandline dialect survives it only on KubeVirt 1.10 and "
                            f"newer; this KubeVirt's version is {shown})"
                        ),
                    )
                )
            else:
                problems.append(Problem(ProblemCode.MIXED_STATE, message))
    return ModeDecision(
        mode=mode, reason=reason, problems=tuple(problems), warnings=tuple(warnings)
    )


def _at_least(version: str | None, wanted: tuple[int, int]) -> bool:
    """Whether a KubeVirt version string is ``wanted`` or newer (unknown: no)."""
    match = _VERSION.match(version) if version else None
    return match is not None and (int(match[1]), int(match[2])) >= wanted
