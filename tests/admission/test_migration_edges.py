"""Migrating a stored VMI that asked for CCA is refused even when its request no longer parses
(issue 24, item 8): such a VMI may be running as a Realm, and a live migration would hang or
move it off a CCA node. Fails closed, as ``uses_cca`` says."""

from __future__ import annotations

from typing import Any

import pytest

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.admission.validate import MIGRATION_REFUSAL, judge_migration, uses_cca
from tests.admission.helpers import labelled

VMI: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "realm", "namespace": "default"},
    "spec": {"domain": {"devices": {}}},
}
MIGRATION = {"spec": {"vmiName": "realm"}}
STALE = [
    labelled(VMI, '{"measurementAlgo": "md5"}'),  # a value no version accepts
    labelled(VMI, "{not json"),
    labelled(VMI, '{"measurementAlgo": "sha256", "future": true}'),  # a key from elsewhere
    {**VMI, "metadata": {**VMI["metadata"], "labels": {ENABLED_LABEL: "yes"}}},
    {
        **VMI,
        "metadata": {**VMI["metadata"], "annotations": {LAUNCH_SECURITY_ANNOTATION: "{}"}},
    },  # parameters left without the label
]


@pytest.mark.parametrize("vmi", STALE)
def test_a_stored_vmi_whose_request_no_longer_parses_is_not_migrated(vmi: dict[str, Any]) -> None:
    assert uses_cca(vmi)
    verdict = judge_migration(MIGRATION, vmi)
    assert verdict.cca_vmi
    assert [v.message for v in verdict.violations] == [MIGRATION_REFUSAL]


def test_a_plain_vmi_migrates() -> None:
    assert not uses_cca(VMI)
    assert judge_migration(MIGRATION, VMI).violations == ()
