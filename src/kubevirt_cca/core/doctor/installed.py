"""Is anything of kubevirt-cca installed at all?

On a cluster without kubevirt-cca every check would fail at once, each with its own "re-apply
the install": a wall of failures that hides the one fact. When none of the objects the install
creates is there (the webhook configurations, the admission policies, and in the install
namespace the ConfigMap, the webhook Service and Deployment, the labeller DaemonSet, the
certificate ConfigMap), doctor says so in one line and how to install.

The namespace itself is not read (the doctor roles grant no read of namespaces): a namespace
that holds none of those objects has nothing of kubevirt-cca either. A read that failed (403,
...) is not "missing", so doctor never claims "not installed" about what it could not see.
"""

from __future__ import annotations

from kubevirt_cca.core.doctor.model import Check, Expected, Read, Snapshot, Status
from kubevirt_cca.core.install.names import WEBHOOK_CONFIGURATION

NAME = "kubevirt-cca"
GUIDE = "docs/install.md"


def nothing_installed(snapshot: Snapshot, expected: Expected) -> bool:
    """Whether every install object doctor reads came back not found."""
    reads = [
        snapshot.mutating,
        snapshot.validating,
        snapshot.config_map,
        snapshot.service,
        snapshot.deployment,
        snapshot.daemon_set,
        snapshot.certificate_config_map,
    ]
    reads += [
        snapshot.policies.get(key, Read())
        for key in (*expected.policies, *expected.self_signed_policies)
    ]
    return all(read.missing for read in reads)


def check_not_installed(snapshot: Snapshot, expected: Expected) -> Check:
    """The one line for a cluster without kubevirt-cca."""
    namespace = expected.options.namespace
    install = (
        f"install it as {GUIDE} says: kubevirt-cca manifests --image YOUR-IMAGE "
        "--virt-launcher-image YOUR-LAUNCHER | kubectl apply -f - "
        "(without cert-manager add --certificates self-signed); installed in another namespace: "
        "kubevirt-cca doctor --namespace NAME"
    )
    no_kubevirt = snapshot.kubevirts.error is None and not snapshot.kubevirts.items()
    return Check(
        NAME,
        Status.FAIL,
        f"kubevirt-cca is not installed: no webhook configuration {WEBHOOK_CONFIGURATION}, "
        f"none of its admission policies, and none of its objects in namespace {namespace}",
        fix=f"install KubeVirt first (its operator and a KubeVirt CR), then {install}"
        if no_kubevirt
        else install,
    )
