"""Feature gates from the KubeVirt CR, and the cluster view admission decides against.

KubeVirt reads ``spec.configuration.developerConfiguration.featureGates`` and, since 1.5,
``disabledFeatureGates``; a gate listed in both is off. kubevirt-cca needs two gates on:
its own ``WorkloadEncryptionCCA`` and KubeVirt's ``Sidecar`` (the Realm set-up runs as a hook
sidecar).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubevirt_cca.constants import CCA_FEATURE_GATE, DEFAULT_HOOK_IMAGE, SIDECAR_FEATURE_GATE
from kubevirt_cca.core.integration import (
    INTEGRATION_MODE_KEY,
    IntegrationMode,
    ModeDecision,
    decide_mode,
    parse_mode,
)
from kubevirt_cca.core.settings import HOOK_IMAGE_KEY, Settings, settings_from_config_map
from kubevirt_cca.errors import SettingsError

GATES_PATH = "spec.configuration.developerConfiguration"


@dataclass(frozen=True)
class FeatureGates:
    """The gates a KubeVirt CR turns on (after ``disabledFeatureGates`` is applied)."""

    enabled: frozenset[str] = frozenset()
    source: str = "the KubeVirt CR"

    def is_enabled(self, gate: str) -> bool:
        return gate in self.enabled


def gates_from_kubevirt(cr: Mapping[str, Any]) -> FeatureGates:
    """The enabled gates of one KubeVirt CR; a malformed CR is a :class:`SettingsError`."""
    node: Any = cr
    for part in ("spec", "configuration", "developerConfiguration"):
        node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            node = {}
        if not isinstance(node, Mapping):
            raise SettingsError(f"KubeVirt CR: {GATES_PATH} is not an object")
    on = _string_list(node.get("featureGates"), "featureGates")
    off = _string_list(node.get("disabledFeatureGates"), "disabledFeatureGates")
    metadata = cr.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    where = f"the KubeVirt CR {namespace}/{name}" if name else "the KubeVirt CR"
    return FeatureGates(enabled=frozenset(on) - frozenset(off), source=where)


def pick_kubevirt(crs: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The KubeVirt CR in force: KubeVirt honours one; take the oldest that is not deleting."""
    live = [cr for cr in crs if not _deleting(cr)]
    if not live:
        return None
    return min(live, key=lambda cr: (_meta(cr, "creationTimestamp"), _meta(cr, "name")))


@dataclass(frozen=True)
class ClusterView:
    """What admission knows about the cluster. ``None`` gates: the KubeVirt CR is unreadable.

    ``gates_problem`` / ``config_problem`` say why, in a sentence fit for a VM owner; a CCA
    object is refused while either is set (fail closed).

    ``integration_mode`` is ``integrationMode`` from kubevirt-cca-config; ``plugin_names`` the
    KubeVirt Plugin objects that exist (``None``: they could not be listed, ``plugins_problem``
    says why). :attr:`mode` resolves them against the gates.
    """

    gates: FeatureGates | None
    gates_problem: str | None = None
    settings: Settings = field(default_factory=Settings)
    hook_image: str = DEFAULT_HOOK_IMAGE
    config_problem: str | None = None
    integration_mode: IntegrationMode = IntegrationMode.AUTO
    plugin_names: frozenset[str] | None = frozenset()
    plugins_problem: str | None = None
    kubevirt_version: str | None = None
    """``status.observedKubeVirtVersion`` of the KubeVirt CR ("" when it says none; ``None``
    when not known here, as in the offline tools)."""

    @functools.cached_property
    def mode(self) -> ModeDecision | None:
        """The integration mode in force and what stops it; ``None`` while gates are unknown."""
        if self.gates is None:
            return None
        return decide_mode(self.integration_mode, gates=self.gates.enabled,
                           plugin_names=self.plugin_names or frozenset(),
                           settings=self.settings, kubevirt_version=self.kubevirt_version)


def config_from_map(data: Mapping[str, Any] | None) -> tuple[Settings, str, str | None]:
    """Settings, hook image and a problem sentence (or ``None``) from kubevirt-cca-config data."""
    data = data or {}
    problems: list[str] = []
    try:
        settings = settings_from_config_map(data)
    except SettingsError as exc:
        settings = Settings()
        problems.append(str(exc))
    image = data.get(HOOK_IMAGE_KEY, DEFAULT_HOOK_IMAGE)
    if not isinstance(image, str) or not image or any(ch.isspace() for ch in image):
        problems.append(f"{HOOK_IMAGE_KEY}: expected a container image reference, got {image!r}")
        image = DEFAULT_HOOK_IMAGE
    return settings, image, "; ".join(problems) or None


def mode_from_map(data: Mapping[str, Any] | None) -> tuple[IntegrationMode, str | None]:
    """``integrationMode`` from kubevirt-cca-config data (absent: auto) and a problem, if any."""
    raw = (data or {}).get(INTEGRATION_MODE_KEY)
    if raw is None or raw == "":
        return IntegrationMode.AUTO, None
    try:
        return parse_mode(raw), None
    except SettingsError as exc:
        return IntegrationMode.AUTO, str(exc)


def all_gates_on() -> FeatureGates:
    """What the offline tools assume without a KubeVirt CR: both gates on."""
    return FeatureGates(enabled=frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE}),
                        source="assumed (no KubeVirt CR given)")


def _string_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"KubeVirt CR: {GATES_PATH}.{key} is not a list of strings")
    return list(value)


def _meta(cr: Mapping[str, Any], key: str) -> str:
    metadata = cr.get("metadata")
    value = metadata.get(key) if isinstance(metadata, Mapping) else None
    return str(value or "")


def _deleting(cr: Mapping[str, Any]) -> bool:
    return bool(_meta(cr, "deletionTimestamp"))
