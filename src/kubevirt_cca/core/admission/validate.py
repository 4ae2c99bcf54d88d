"""What the validating webhooks refuse (docs/admission.md, "Validation").

- A VMI being created must be exactly what mutation makes of it: a labelled VMI that would
  still be changed by mutation did not go through the mutating webhook, and is refused.
- A VMI being updated keeps its CCA label, parameters, resolved record and hook entry, and its
  sidecar list gains no entry (issue 21); nothing else is checked on update (KubeVirt updates
  running VMIs constantly, and turning a gate off later must not wedge them).
- VM, VMI replica set and VM pool templates get the create-time checks when they are created
  or their template changes.
- A migration of a CCA VMI is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    INTEGRATION_ANNOTATION,
    LAUNCH_SECURITY_ANNOTATION,
    NOT_MIGRATABLE_REASON,
    RESOLVED_ANNOTATION,
)
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.mutate import check_template, plan_vmi
from kubevirt_cca.core.admission.rules import added_sidecars_message
from kubevirt_cca.core.admission.sidecar_entry import looks_like_ours, parse_sidecars
from kubevirt_cca.core.vmi.placement import key_fields, misplaced_keys
from kubevirt_cca.core.vmi.request import find_template, parse_request
from kubevirt_cca.core.wire.objects import dig, metadata_of
from kubevirt_cca.errors import RequestError, Violation

Operation = Literal["CREATE", "UPDATE"]

MIGRATION_REFUSAL = f"Cannot migrate VMI, Reason: {NOT_MIGRATABLE_REASON}, Message: VMI uses CCA"


def validate_vmi(
    obj: Mapping[str, Any],
    *,
    operation: Operation,
    cluster: ClusterView,
    old: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Every reason to refuse this VMI (empty: admitted)."""
    if operation == "UPDATE" and old is not None:
        return _vmi_update(obj, old)
    plan = plan_vmi(obj, cluster)
    violations = list(plan.violations)
    for change in plan.changes:
        violations.append(
            Violation(
                change.field,
                (
                    f"must be {change.expected} on a CCA VMI; "
                    "kubevirt-cca's mutating webhook sets it and did not run "
                    "(ask the cluster admin whether its MutatingWebhookConfiguration is installed)"
                ),
            )
        )
    return violations


def validate_template(
    obj: Mapping[str, Any],
    *,
    operation: Operation,
    cluster: ClusterView,
    old: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Every reason to refuse a VM / VMI replica set / VM pool (its VMI template)."""
    try:
        template = find_template(obj)
    except RequestError as exc:
        return list(exc.violations)
    misplaced = new_misplaced_keys(obj, old if operation == "UPDATE" else None)
    if operation == "UPDATE" and old is not None and _same_template(obj, old):
        # Metadata and status updates (finalizers, controller annotations) never wait on gates.
        return misplaced
    return [*misplaced, *check_template(template, cluster)[1]]


def new_misplaced_keys(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Violation]:
    """:func:`misplaced_keys` of ``obj``, less those ``old`` already had (on update).

    A key the old object already had is let through, as the policy cca-keys-in-place does: an
    object created before kubevirt-cca was installed must not be wedged for KubeVirt's own
    updates, and changes to our keys on a VMI have their own refusals (below). A stray key
    being added is refused.
    """
    misplaced = misplaced_keys(obj)
    if old is None or not misplaced:
        return misplaced
    before = key_fields(old)
    return [v for v in misplaced if v.field not in before]


@dataclass(frozen=True)
class MigrationVerdict:
    """Why a migration is refused (empty: admitted); ``cca_vmi``: because its VMI is a Realm,
    which is answered with KubeVirt's own status message (:data:`MIGRATION_REFUSAL`)."""

    violations: tuple[Violation, ...] = ()
    cca_vmi: bool = False


def judge_migration(
    migration: Mapping[str, Any],
    vmi: Mapping[str, Any] | None,
    *,
    lookup_problem: str | None = None,
) -> MigrationVerdict:
    """Refuse migrating a CCA VMI; refuse when the VMI could not be read (fail closed)."""
    spec = migration.get("spec")
    name = spec.get("vmiName") if isinstance(spec, Mapping) else None
    if not isinstance(name, str) or not name:
        return MigrationVerdict(
            (Violation("spec.vmiName", "expected the name of the VMI to migrate"),)
        )
    if lookup_problem is not None:
        return MigrationVerdict(
            (
                Violation(
                    "spec.vmiName",
                    (
                        f"kubevirt-cca cannot read VMI {name!r} to tell whether it uses CCA "
                        f"({lookup_problem}); a CCA VMI cannot be live-migrated, "
                        "so the migration is refused until it can. Try again shortly"
                    ),
                ),
            )
        )
    if vmi is not None and uses_cca(vmi):
        return MigrationVerdict((Violation("spec.vmiName", MIGRATION_REFUSAL),), cca_vmi=True)
    return MigrationVerdict()


def uses_cca(vmi: Mapping[str, Any]) -> bool:
    """Whether a stored VMI is a Realm. A VMI whose request no longer parses counts as one."""
    try:
        return parse_request(vmi) is not None
    except RequestError:
        return True


# --- updates -----------------------------------------------------------------------------------


def _vmi_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Violation]:
    violations = new_misplaced_keys(new, old)
    old_meta, new_meta = metadata_of(old), metadata_of(new)
    immutable = (
        ("labels", ENABLED_LABEL),
        ("annotations", LAUNCH_SECURITY_ANNOTATION),
        ("annotations", RESOLVED_ANNOTATION),
        ("annotations", INTEGRATION_ANNOTATION),
    )
    for section, key in immutable:
        before, after = dig(old_meta, section, key), dig(new_meta, section, key)
        if before != after:
            violations.append(
                Violation(f"metadata.{section}[{key}]", _update_message(key, before, after))
            )
    if _our_entries(old_meta) != _our_entries(new_meta):
        violations.append(
            Violation(
                f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]",
                "the kubevirt-cca hook entry of an existing CCA VMI cannot be changed or removed; "
                "the hook sidecar is what makes it a Realm",
            )
        )
    elif dig(old_meta, "labels", ENABLED_LABEL) is not None and (
        added := _added_entries(old_meta, new_meta)
    ):
        # Issue 21: KubeVirt reads the list when it creates the launcher pod, which may be
        # after this update; an entry added now would run beside ours.
        violations.append(
            Violation(
                f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]", added_sidecars_message(added)
            )
        )
    # Nothing CCA-related changed: the VMI was judged when it was created. Re-judging it here
    # could only wedge KubeVirt's own updates of a running VMI.
    return violations


def _update_message(key: str, before: Any, after: Any) -> str:
    if key == ENABLED_LABEL and before is None:
        return (
            "a running VMI cannot become a CCA Realm; set the label on the VM's template "
            "(or create a new VMI with it) and restart"
        )
    if key == ENABLED_LABEL:
        return (
            "a CCA VMI cannot stop being one; delete the VMI "
            "(or change the VM's template and restart)"
        )
    if key in (RESOLVED_ANNOTATION, INTEGRATION_ANNOTATION):
        return "is written by kubevirt-cca at admission and cannot be changed afterwards"
    return (
        "the CCA parameters of an existing VMI cannot be changed; change them on the VM's template "
        "(or create a new VMI) and restart"
    )


def _our_entries(metadata: Mapping[str, Any]) -> list[Any] | str:
    annotations = metadata.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    parsed = parse_sidecars(annotations)
    if parsed.violations:
        # Unreadable: compare the raw text, so any change to it counts as a change.
        return str(annotations.get(HOOK_SIDECARS_ANNOTATION))
    return [entry for entry in parsed.entries if looks_like_ours(entry)]


def _added_entries(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Any]:
    """Entries of ``new``'s sidecar list that ``old``'s does not have (counted, so a second copy
    of an entry is added too). Only reached when our own entries are unchanged."""
    before = _entries(old)
    added: list[Any] = []
    for entry in _entries(new):
        if entry in before:
            before.remove(entry)
        else:
            added.append(entry)
    return added


def _entries(metadata: Mapping[str, Any]) -> list[Any]:
    annotations = metadata.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    return list(parse_sidecars(annotations).entries)


def _same_template(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    try:
        before, after = find_template(old), find_template(new)
    except RequestError:
        return False
    return (before.metadata, before.spec) == (after.metadata, after.spec)


@dataclass(frozen=True)
class VMILookup:
    """What the adapter found for a migration's VMI: the object, or why it could not tell."""

    vmi: Mapping[str, Any] | None = None
    problem: str | None = None
