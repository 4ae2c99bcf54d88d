"""A node's labels: the keys for what one layer of its stack honours, and what it carries.

libvirt's ``<cca>`` element and QEMU's ``rme-guest`` object are labelled alike under their own
keys (docs/node-labels.md): the labeller writes them (:func:`node_labels`) and admission and the
hook require them (``core/vmi/requirements.py``), both from these. The labeller writes only
:data:`OWNED_LABELS` and touches no key :func:`is_owned_label` rejects.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevirt_cca.constants import (
    LABELLER_OWNED_LABELS,
    MEASUREMENT_ALGORITHMS,
    NODE_ALGO_LABEL_PREFIX,
    NODE_CCA_LABEL,
    NODE_MEASUREMENT_LOG_LABEL,
    NODE_PERSONALIZATION_VALUE_LABEL,
    NODE_RME_GUEST_ALGO_LABEL_PREFIX,
    NODE_RME_GUEST_MEASUREMENT_LOG_LABEL,
    NODE_RME_GUEST_PERSONALIZATION_VALUE_LABEL,
)
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.honoured import Honoured


@dataclass(frozen=True)
class LayerLabels:
    """The label keys of one layer: one per measurement algorithm, one per parameter."""

    algo_prefix: str
    personalization_value: str
    measurement_log: str

    def algorithm(self, name: str) -> str:
        """The key that says this layer honours ``measurementAlgo: name``."""
        return self.algo_prefix + name


LIBVIRT = LayerLabels(
    NODE_ALGO_LABEL_PREFIX, NODE_PERSONALIZATION_VALUE_LABEL, NODE_MEASUREMENT_LOG_LABEL
)
RME_GUEST = LayerLabels(
    NODE_RME_GUEST_ALGO_LABEL_PREFIX,
    NODE_RME_GUEST_PERSONALIZATION_VALUE_LABEL,
    NODE_RME_GUEST_MEASUREMENT_LOG_LABEL,
)


def node_labels(report: DetectionReport) -> dict[str, str]:
    """The labels a node carries for ``report`` (owned keys only; absent keys are removed)."""
    if not report.capable:
        return {}
    labels = {NODE_CCA_LABEL: "true"}
    labels.update(_honoured_labels(report.honoured, LIBVIRT))
    if report.rme_guest is not None:
        labels.update(_honoured_labels(report.rme_guest, RME_GUEST))
    return labels


def _honoured_labels(honoured: Honoured, layer: LayerLabels) -> dict[str, str]:
    keys = [layer.algorithm(algorithm) for algorithm in honoured.measurement_algorithms]
    if honoured.personalization_value:
        keys.append(layer.personalization_value)
    if honoured.measurement_log:
        keys.append(layer.measurement_log)
    # Only the fixed set the labeller's node policy allows (an algorithm Arm's RMM does not
    # know gets no label).
    return {key: "true" for key in keys if key in OWNED_LABELS}


# Every node label the labeller can write: one tuple, which its node policy also allows.
OWNED_LABELS: tuple[str, ...] = tuple(
    key
    for owned in LABELLER_OWNED_LABELS
    for key in ((owned + a for a in MEASUREMENT_ALGORITHMS) if owned.endswith("-") else (owned,))
)


def is_owned_label(key: str) -> bool:
    """Whether a node label key belongs to kubevirt-cca (the labeller touches no other key).

    It writes only :data:`OWNED_LABELS`; any key under one of its prefixes is its own to remove
    (one for an algorithm it no longer labels, written by an older version, is stale)."""
    return key in OWNED_LABELS or any(
        key.startswith(owned) for owned in LABELLER_OWNED_LABELS if owned.endswith("-")
    )
