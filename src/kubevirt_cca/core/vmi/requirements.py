"""What a CCA request needs from a node: the node labels that say its stack honours it.

A requested parameter must never be silently dropped (docs/security.md): the labeller labels
what each node's stack honours (``core/node/labels.py``), admission schedules a request only
on nodes carrying every label it needs, and the hook checks the same list on the VMI before it
writes a parameter into the domain. One function, :func:`required_node_labels`, decides that
list for all three.

Which labels depend on the dialect, since a different layer passes the parameter on:

- ``vep`` and ``openeuler``: libvirt (its domain capabilities) —
  ``cca.kubevirt.io/measurement-algo-<algo>``, ``cca.kubevirt.io/personalization-value``,
  ``cca.kubevirt.io/measurement-log``;
- ``qemu-commandline``: QEMU's ``rme-guest`` object (libvirt only passes the arguments) —
  the same names with ``rme-guest-`` in front.

``measurementLog: false`` needs nothing: no log is what every stack does by default.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import (
    MEASUREMENT_ALGO_KEY,
    MEASUREMENT_ALGORITHMS,
    MEASUREMENT_LOG_KEY,
    NODE_CCA_LABEL,
    PERSONALIZATION_VALUE_KEY,
)
from kubevirt_cca.core.cluster.settings import Dialect
from kubevirt_cca.core.node.labels import LIBVIRT, RME_GUEST
from kubevirt_cca.core.vmi.request import CCARequest


@dataclass(frozen=True)
class Requirement:
    """One node label a request needs, and the capability it stands for (for messages)."""

    label: str
    capability: str
    """e.g. ``measurementAlgo sha384 (libvirt)``."""
    parameter: str | None = None
    """The VEP 129 parameter it stands for (``measurementAlgo``, ...); ``None``: Arm CCA itself."""


def requirements(request: CCARequest, dialect: Dialect) -> tuple[Requirement, ...]:
    """Every node label a Realm with ``request`` needs under ``dialect``, CCA label first."""
    qemu = dialect is Dialect.QEMU_COMMANDLINE
    layer = "QEMU rme-guest" if qemu else "libvirt"
    keys = RME_GUEST if qemu else LIBVIRT
    found = [Requirement(NODE_CCA_LABEL, "Arm CCA")]
    if request.measurement_algo is not None:
        found.append(
            Requirement(
                keys.algorithm(request.measurement_algo),
                f"{MEASUREMENT_ALGO_KEY} {request.measurement_algo} ({layer})",
                MEASUREMENT_ALGO_KEY,
            )
        )
    if request.personalization_value is not None:
        found.append(
            Requirement(
                keys.personalization_value,
                f"{PERSONALIZATION_VALUE_KEY} ({layer})",
                PERSONALIZATION_VALUE_KEY,
            )
        )
    if request.measurement_log:
        found.append(
            Requirement(
                keys.measurement_log, f"{MEASUREMENT_LOG_KEY} ({layer})", MEASUREMENT_LOG_KEY
            )
        )
    return tuple(found)


@functools.lru_cache(maxsize=256)
def required_node_labels(request: CCARequest, dialect: Dialect) -> tuple[str, ...]:
    """The node labels (each with value ``"true"``) a Realm with ``request`` must run on."""
    return tuple(r.label for r in requirements(request, dialect))


def missing_on_selector(
    request: CCARequest, dialect: Dialect, node_selector: Any
) -> tuple[Requirement, ...]:
    """The parameter requirements a VMI's ``spec.nodeSelector`` does not carry as ``"true"``.

    The CCA label itself is not asked for here (the hook cannot start a Realm anyway where
    libvirt knows no CCA; admission and the in-API-server policy see to that label).
    """
    selector = node_selector if isinstance(node_selector, Mapping) else {}
    return tuple(r for r in requirements(request, dialect)[1:] if selector.get(r.label) != "true")


def unhonoured(
    request: CCARequest, dialect: Dialect, nodes: Iterable[Mapping[str, str]]
) -> tuple[Requirement, ...]:
    """The requirements no node in ``nodes`` (each node's labels) meets together with the rest.

    Empty when at least one node carries every label; otherwise the labels missing on the node
    that comes closest, so the message names what is missing rather than everything.
    """
    needed = requirements(request, dialect)
    best: tuple[Requirement, ...] | None = None
    for labels in nodes:
        missing = tuple(r for r in needed if labels.get(r.label) != "true")
        if not missing:
            return ()
        if best is None or len(missing) < len(best):
            best = missing
    return best if best is not None else needed


def honoured_algorithms(dialect: Dialect, nodes: Iterable[Mapping[str, str]]) -> tuple[str, ...]:
    """The measurement algorithms some CCA node in ``nodes`` honours under ``dialect``.

    The labeller labels an algorithm only where a Realm really gets it when it asks
    (``capabilities.chosen_algorithms``), so this is what a request can choose from here.
    """
    keys = RME_GUEST if dialect is Dialect.QEMU_COMMANDLINE else LIBVIRT
    nodes = tuple(nodes)
    return tuple(
        algorithm
        for algorithm in MEASUREMENT_ALGORITHMS
        if any(labels.get(keys.algorithm(algorithm)) == "true" for labels in nodes)
    )
