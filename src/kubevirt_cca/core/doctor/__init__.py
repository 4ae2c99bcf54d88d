"""Is this cluster ready for Realms? Checks from a snapshot of cluster objects to results.

Pure: the snapshot holds the objects as the API server returned them (wire JSON dicts), or
why they could not be read; :func:`run_checks` turns it into one :class:`Check` per question an
admin asks, in the order of the install guide. ``adapters/doctor_snapshot.py`` reads the
snapshot; ``kubevirt-cca doctor`` prints the results (docs/troubleshooting.md lists each).
"""

from __future__ import annotations

from kubevirt_cca.core.doctor.certificate import check_certificate
from kubevirt_cca.core.doctor.cluster import (
    check_config,
    check_feature_gates,
    check_kubevirt,
    cluster_view,
)
from kubevirt_cca.core.doctor.installed import check_not_installed, nothing_installed
from kubevirt_cca.core.doctor.integration_mode import (
    check_integration_mode,
    check_plugins,
    sidecar_gate_needed,
)
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Read,
    Snapshot,
    Status,
    is_ready,
)
from kubevirt_cca.core.doctor.nodes import check_cca_nodes, check_labeller
from kubevirt_cca.core.doctor.parameters import check_cca_parameters
from kubevirt_cca.core.doctor.webhooks import (
    check_admission_policies,
    check_webhook_configurations,
    check_webhook_service,
)

__all__ = ["Check", "Expected", "Read", "Snapshot", "Status", "is_ready", "run_checks"]


def run_checks(snapshot: Snapshot, expected: Expected) -> list[Check]:
    """Every check, in the order an admin installs things; on a cluster without kubevirt-cca,
    the one check that says so (``installed.py``)."""
    if nothing_installed(snapshot, expected):
        return [check_not_installed(snapshot, expected)]
    view = cluster_view(snapshot, expected)
    return [
        check_kubevirt(snapshot, view, expected),
        check_feature_gates(snapshot, view, plugin_mode=not sidecar_gate_needed(view)),
        check_config(snapshot, expected),
        check_integration_mode(snapshot, view, expected),
        check_plugins(snapshot, view),
        check_webhook_configurations(snapshot, expected),
        check_webhook_service(snapshot, expected),
        check_certificate(snapshot, expected),
        check_admission_policies(snapshot, expected),
        check_labeller(snapshot, expected, view),
        check_cca_nodes(snapshot),
        check_cca_parameters(snapshot),
    ]
