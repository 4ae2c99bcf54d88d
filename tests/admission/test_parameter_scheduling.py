"""Admission schedules each requested parameter only on nodes that honour it (issue 15).

The node labels a request needs are merged into the user's own ``nodeSelector``; a conflicting
selector value or a required node affinity that rules those nodes out is refused with the
label named. Patches are applied with an independent RFC 6902 library and the result checked
against KubeVirt's CRD schema.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest

from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.validate import validate_vmi
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from tests.admission.helpers import labelled, schema_errors

RPV = base64.b64encode(b"\x01" * 64).decode()


def cluster(dialect: Dialect = Dialect.VEP) -> ClusterView:
    return ClusterView(gates=all_gates_on(), settings=Settings(dialect=dialect))


def vmi(spec: dict[str, Any] | None = None, **parameters: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "realm", "namespace": "default"},
        "spec": {"domain": {"devices": {}}, **(spec or {})},
    }
    return labelled(obj, json.dumps(parameters) if parameters else None)


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            Dialect.VEP,
            {
                "kubevirt.io/cca": "true",
                "disktype": "ssd",
                "cca.kubevirt.io/measurement-algo-sha384": "true",
                "cca.kubevirt.io/personalization-value": "true",
                "cca.kubevirt.io/measurement-log": "true",
            },
        ),
        (
            Dialect.OPENEULER,
            {
                "kubevirt.io/cca": "true",
                "disktype": "ssd",
                "cca.kubevirt.io/measurement-algo-sha384": "true",
                "cca.kubevirt.io/personalization-value": "true",
                "cca.kubevirt.io/measurement-log": "true",
            },
        ),
        (
            Dialect.QEMU_COMMANDLINE,
            {
                "kubevirt.io/cca": "true",
                "disktype": "ssd",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha384": "true",
                "cca.kubevirt.io/rme-guest-personalization-value": "true",
                "cca.kubevirt.io/rme-guest-measurement-log": "true",
            },
        ),
    ],
)
def test_parameter_labels_are_merged_with_the_users_selector(
    dialect: Dialect, expected: dict[str, str]
) -> None:
    obj = vmi(
        {"nodeSelector": {"disktype": "ssd", "kubevirt.io/cca": "true"}},
        measurementAlgo="sha384",
        personalizationValue=RPV,
        measurementLog=True,
    )
    plan = plan_vmi(obj, cluster(dialect))
    assert plan.violations == ()
    admitted = jsonpatch.apply_patch(obj, plan.patch)
    assert admitted["spec"]["nodeSelector"] == expected
    assert schema_errors(admitted) == []
    assert validate_vmi(admitted, operation="CREATE", cluster=cluster(dialect)) == []


def test_label_only_and_log_off_need_only_the_cca_label() -> None:
    for obj in (vmi(), vmi(measurementLog=False)):
        admitted = jsonpatch.apply_patch(obj, plan_vmi(obj, cluster()).patch)
        assert admitted["spec"]["nodeSelector"] == {"kubevirt.io/cca": "true"}


def test_a_conflicting_selector_value_is_refused() -> None:
    obj = vmi(
        {"nodeSelector": {"cca.kubevirt.io/personalization-value": "false"}},
        personalizationValue=RPV,
    )
    [violation] = plan_vmi(obj, cluster()).violations
    assert violation.field == "spec.nodeSelector[cca.kubevirt.io/personalization-value]"
    assert violation.message.startswith('must be "true" for a CCA Realm')


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": expressions} for expressions in terms
                    ]
                }
            }
        }
    }


FIELD = (
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
)


@pytest.mark.parametrize(
    "expression",
    [
        {"key": "cca.kubevirt.io/measurement-algo-sha512", "operator": "DoesNotExist"},
        {"key": "cca.kubevirt.io/measurement-algo-sha512", "operator": "NotIn", "values": ["true"]},
        {"key": "cca.kubevirt.io/measurement-algo-sha512", "operator": "In", "values": ["yes"]},
    ],
)
def test_affinity_that_rules_out_the_needed_nodes_is_refused(expression: dict[str, Any]) -> None:
    obj = vmi(affinity([expression]), measurementAlgo="sha512")
    [violation] = plan_vmi(obj, cluster()).violations
    assert violation.field == FIELD
    assert violation.message.startswith(
        "rules out nodes labelled cca.kubevirt.io/measurement-algo-sha512=true, the only nodes "
        "that can run this Realm as asked"
    )


def test_affinity_that_only_narrows_is_kept() -> None:
    narrowing = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    excluding = {"key": "cca.kubevirt.io/measurement-algo-sha512", "operator": "DoesNotExist"}
    # Terms are alternatives: one term that can match is enough.
    obj = vmi(affinity([narrowing], [excluding]), measurementAlgo="sha512")
    plan = plan_vmi(obj, cluster())
    assert plan.violations == ()
    admitted = jsonpatch.apply_patch(obj, plan.patch)
    assert admitted["spec"]["affinity"] == obj["spec"]["affinity"]
    assert schema_errors(admitted) == []


def test_a_vm_asking_for_what_no_node_honours_is_admitted_with_a_warning() -> None:
    from kubevirt_cca.core.admission.admit import admit
    from kubevirt_cca.core.admission.reviews import parse_review
    from kubevirt_cca.core.vmi.webhook_table import Endpoint
    from tests.admission.helpers import review

    vm = labelled(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "vm", "namespace": "default"},
            "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}},
        },
        json.dumps({"personalizationValue": RPV}),
    )
    nodes = ({"kubevirt.io/cca": "true", "cca.kubevirt.io/measurement-algo-sha256": "true"},)
    view = ClusterView(gates=all_gates_on(), cca_node_labels=nodes)
    body = json.dumps(review(vm)).encode()
    response = admit(Endpoint.VALIDATE_TEMPLATES, parse_review(body), view).response
    assert response["allowed"]
    assert response["warnings"] == [
        "no node in this cluster honours personalizationValue (libvirt) (node label "
        "cca.kubevirt.io/personalization-value=true) with the vep dialect: the VMI stays "
        "Pending until a node does; remove the parameter to run on the nodes there are "
        "(docs/vm-owners.md)"
    ]
    # Nodes unknown (not listed yet): nothing is said.
    unknown = admit(
        Endpoint.VALIDATE_TEMPLATES, parse_review(body), ClusterView(gates=all_gates_on())
    ).response
    assert unknown["allowed"] and "warnings" not in unknown
