"""The cluster view admission decides against, built in one place: :func:`build_view`.

The webhook's watch-fed cache, ``kubevirt-cca validate`` (from files) and ``kubevirt-cca doctor``
(from one read) all build their :class:`ClusterView` here, so doctor reports exactly what
admission will do. The decisions made here and nowhere else:

* **which KubeVirt CR is in force**: the oldest not being deleted in KubeVirt's namespace (the
  webhook's ``--kubevirt-namespace``); CRs elsewhere, or younger ones, are ignored and listed
  in :attr:`ClusterView.ignored_kubevirts` (doctor flags them);
* **the feature gates**: ``spec.configuration.developerConfiguration.featureGates`` minus, since
  KubeVirt 1.5, ``disabledFeatureGates``. A list that holds anything but strings makes the gates
  unknown (CCA objects refused, fail closed). kubevirt-cca's gate has three names in the field
  (``WorkloadEncryptionCCA``, ``EnableCCA``, ``EnableARMCCA``): any one listed turns it on,
  any one disabled turns it off; :attr:`FeatureGates.cca_gate` says which name was found;
* **the integration-mode inputs**: ``integrationMode`` and the settings from kubevirt-cca-config,
  the Plugin objects, the KubeVirt version.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    CCA_FEATURE_GATE_NAMES,
    DEFAULT_HOOK_IMAGE,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.cluster.integration import (
    INTEGRATION_MODE_KEY,
    IntegrationMode,
    ModeDecision,
    decide_mode,
    parse_mode,
)
from kubevirt_cca.core.cluster.settings import HOOK_IMAGE_KEY, Settings, settings_from_config_map
from kubevirt_cca.core.wire.objects import meta_str, metadata_of
from kubevirt_cca.errors import SettingsError

GATES_PATH = "spec.configuration.developerConfiguration"


@dataclass(frozen=True)
class FeatureGates:
    """The gates a KubeVirt CR turns on (after ``disabledFeatureGates`` is applied).

    kubevirt-cca's own gate appears in ``enabled`` under :data:`CCA_FEATURE_GATE` whichever of
    its names turned it on; ``cca_gate`` is the name the CR used (``None``: off).
    """

    enabled: frozenset[str] = frozenset()
    source: str = "the KubeVirt CR"
    cca_gate: str | None = None
    # What the CR wrote, for doctor's messages and its patch (order and aliases kept); not part
    # of the decision, so two views that decide alike compare equal.
    listed: tuple[str, ...] = field(default=(), compare=False)
    """``featureGates`` as written."""
    disabled: tuple[str, ...] = field(default=(), compare=False)
    """``disabledFeatureGates`` as written."""

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
    name = meta_str(cr, "name")
    where = f"the KubeVirt CR {meta_str(cr, 'namespace')}/{name}" if name else "the KubeVirt CR"
    enabled = frozenset(on) - frozenset(off) - frozenset(CCA_FEATURE_GATE_NAMES)
    cca_gate = next((g for g in on if g in CCA_FEATURE_GATE_NAMES), None)
    if cca_gate is None or any(g in off for g in CCA_FEATURE_GATE_NAMES):
        cca_gate = None
    else:
        enabled |= {CCA_FEATURE_GATE}
    return FeatureGates(
        enabled=enabled, source=where, cca_gate=cca_gate, listed=tuple(on), disabled=tuple(off)
    )


def pick_kubevirt(crs: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The KubeVirt CR in force: KubeVirt honours one; take the oldest that is not deleting."""
    live = [cr for cr in crs if not _deleting(cr)]
    if not live:
        return None
    return min(live, key=lambda cr: (meta_str(cr, "creationTimestamp"), meta_str(cr, "name")))


def kubevirt_name(cr: Mapping[str, Any]) -> str:
    """``namespace/name`` of a KubeVirt CR."""
    return f"{meta_str(cr, 'namespace')}/{meta_str(cr, 'name')}"


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
    kubevirt: Mapping[str, Any] | None = field(default=None, compare=False)
    """The KubeVirt CR in force (``None``: none could be chosen)."""
    ignored_kubevirts: tuple[str, ...] = ()
    """``namespace/name`` of the other KubeVirt CRs seen, which admission ignores."""
    cca_node_labels: tuple[Mapping[str, str], ...] | None = None
    """The labels of each node labelled ``kubevirt.io/cca=true``; ``None`` when not known
    (then admission cannot warn that no node honours a requested parameter)."""

    @functools.cached_property
    def mode(self) -> ModeDecision | None:
        """The integration mode in force and what stops it; ``None`` while gates are unknown."""
        if self.gates is None:
            return None
        return decide_mode(
            self.integration_mode,
            gates=self.gates.enabled,
            plugin_names=self.plugin_names or frozenset(),
            settings=self.settings,
            kubevirt_version=self.kubevirt_version,
        )


def build_view(
    *,
    kubevirts: Iterable[Mapping[str, Any]] | None,
    kubevirt_namespace: str,
    kubevirts_problem: str | None = None,
    config_data: Mapping[str, Any] | None = None,
    config_unreadable: str | None = None,
    plugin_names: frozenset[str] | None = frozenset(),
    plugins_problem: str | None = None,
) -> ClusterView:
    """The cluster view from what was read; the one place these inputs become decisions.

    ``kubevirts`` are the KubeVirt CRs read (any namespace; ``None``: they could not be listed,
    ``kubevirts_problem`` says why); ``config_data`` the kubevirt-cca-config data (``None``:
    absent; ``config_unreadable``: why it could not be read); ``plugin_names`` the Plugin
    objects (``None``: unlistable, ``plugins_problem`` says why).
    """
    settings, image, config_problem = config_from_map(config_data)
    mode, mode_problem = mode_from_map(config_data)
    if mode_problem is not None:
        config_problem = "; ".join(p for p in (config_problem, mode_problem) if p)
    if config_unreadable is not None:
        config_problem = f"it could not be read: {config_unreadable}"
    view = ClusterView(
        gates=None,
        settings=settings,
        hook_image=image,
        config_problem=config_problem,
        integration_mode=mode,
        plugin_names=plugin_names,
        plugins_problem=plugins_problem if plugin_names is None else None,
    )
    if kubevirts is None:
        return dataclasses.replace(
            view, gates_problem=f"the KubeVirt CR could not be read: {kubevirts_problem}"
        )
    crs = list(kubevirts)
    ours = [cr for cr in crs if meta_str(cr, "namespace") in ("", kubevirt_namespace)]
    cr = pick_kubevirt(ours)
    ignored = tuple(sorted(kubevirt_name(c) for c in crs if c is not cr))
    if cr is None:
        return dataclasses.replace(
            view,
            ignored_kubevirts=ignored,
            gates_problem=f"no KubeVirt CR found in namespace {kubevirt_namespace}",
        )
    status = cr.get("status")
    version = status.get("observedKubeVirtVersion") if isinstance(status, Mapping) else None
    view = dataclasses.replace(
        view,
        kubevirt=cr,
        ignored_kubevirts=ignored,
        kubevirt_version=version if isinstance(version, str) else "",
    )
    try:
        return dataclasses.replace(view, gates=gates_from_kubevirt(cr))
    except SettingsError as exc:
        return dataclasses.replace(view, gates_problem=str(exc))


_NOT_A_MAP = "data: expected a map of strings to strings"


def config_from_map(data: Mapping[str, Any] | None) -> tuple[Settings, str, str | None]:
    """Settings, hook image and a problem sentence (or ``None``) from kubevirt-cca-config data."""
    if data is not None and not isinstance(data, Mapping):
        return Settings(), DEFAULT_HOOK_IMAGE, _NOT_A_MAP
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
    if data is not None and not isinstance(data, Mapping):
        return IntegrationMode.AUTO, _NOT_A_MAP
    raw = (data or {}).get(INTEGRATION_MODE_KEY)
    if raw is None or raw == "":
        return IntegrationMode.AUTO, None
    try:
        return parse_mode(raw), None
    except SettingsError as exc:
        return IntegrationMode.AUTO, str(exc)


def all_gates_on() -> FeatureGates:
    """What the offline tools assume without a KubeVirt CR: both gates on."""
    return FeatureGates(
        enabled=frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE}),
        source="assumed (no KubeVirt CR given)",
    )


def _string_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"KubeVirt CR: {GATES_PATH}.{key} is not a list of strings")
    return list(value)


def _deleting(cr: Mapping[str, Any]) -> bool:
    return bool(metadata_of(cr).get("deletionTimestamp"))
