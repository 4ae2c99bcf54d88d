"""Which CCA parameters the cluster's nodes honour, under the configured dialect.

A VM that asks for a parameter no CCA node honours is admitted with a warning and stays
Pending (docs/vm-owners.md); this check tells the admin up front which requests would.
"""

from __future__ import annotations

from kubevirt_cca.constants import MEASUREMENT_ALGORITHMS, NODE_CCA_LABEL
from kubevirt_cca.core.cluster.settings import Dialect, settings_from_config_map
from kubevirt_cca.core.doctor.model import Check, Snapshot, Status, mapping, unreadable
from kubevirt_cca.core.vmi.request import CCARequest
from kubevirt_cca.core.vmi.requirements import Requirement, requirements
from kubevirt_cca.core.wire.objects import dig
from kubevirt_cca.errors import SettingsError

# Stands for "some personalization value": only whether one is set decides the requirement.
_ANY_VALUE = "A" * 88


def every_parameter(dialect: Dialect) -> list[Requirement]:
    """One requirement per parameter (and per algorithm) a request can name."""
    requests = [CCARequest(measurement_algo=a) for a in MEASUREMENT_ALGORITHMS]
    requests += [CCARequest(personalization_value=_ANY_VALUE), CCARequest(measurement_log=True)]
    return [requirements(request, dialect)[1] for request in requests]


def check_cca_parameters(snapshot: Snapshot) -> Check:
    name = "CCA parameters"
    if snapshot.nodes.error:
        return unreadable(name, "Nodes", snapshot.nodes)
    data = mapping(dig(snapshot.config_map.value, "data")) if not snapshot.config_map.error else {}
    try:
        dialect = settings_from_config_map(data).dialect
    except SettingsError:
        dialect = Dialect.VEP  # the config check reports the problem; judge by the default
    nodes = [mapping(dig(n, "metadata", "labels")) for n in snapshot.nodes.items()]
    capable = [labels for labels in nodes if labels.get(NODE_CCA_LABEL) == "true"]
    if not capable:
        return Check(
            name,
            Status.OK,
            "no CCA-capable node, so no parameter is honoured (see the check above)",
        )
    honoured: list[str] = []
    nowhere: list[str] = []
    for requirement in every_parameter(dialect):
        count = sum(1 for labels in capable if labels.get(requirement.label) == "true")
        if count:
            honoured.append(f"{requirement.capability}: {count} node(s)")
        else:
            nowhere.append(f"{requirement.capability} (label {requirement.label})")
    summary = f"dialect {dialect.value}: " + (
        f"honoured: {'; '.join(honoured)}"
        if honoured
        else "no parameter honoured (platform defaults only)"
    )
    details = tuple(
        f"honoured by no node: {what}; "
        "a VM asking for it is admitted with a warning and stays Pending"
        for what in nowhere
    )
    return Check(name, Status.OK, summary, details)
