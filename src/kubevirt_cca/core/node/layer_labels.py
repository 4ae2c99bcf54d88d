"""The node label keys for what one layer of a node's stack honours, built in one place.

libvirt's ``<cca>`` element and QEMU's ``rme-guest`` object are labelled alike under their own
keys (docs/node-labels.md): the labeller writes them (``capabilities.node_labels``) and
admission and the hook require them (``requirements``), both from these.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevirt_cca.constants import (
    NODE_ALGO_LABEL_PREFIX,
    NODE_MEASUREMENT_LOG_LABEL,
    NODE_PERSONALIZATION_VALUE_LABEL,
    NODE_RME_GUEST_ALGO_LABEL_PREFIX,
    NODE_RME_GUEST_MEASUREMENT_LOG_LABEL,
    NODE_RME_GUEST_PERSONALIZATION_VALUE_LABEL,
)


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
