"""The hook's decision: the domain virt-launcher should define for a VMI.

Both entry points use it: the hook sidecar's ``OnDefineDomain`` (``sidecar.py``) and the Plugins
path's ``MutateDomain`` (``mutate_domain.py``). virt-launcher sends the libvirt domain XML it
is about to define and the VMI as JSON. The VMI is the source of truth (read with the same parser as
admission): a VMI that asks for no Realm gets its domain back byte for byte; a VMI that asks
for one gets the Realm rewrite. Anything else fails closed with a :class:`HookError` whose text
is what ``kubectl describe vmi`` shows, so it names the problem and what to do. The gRPC
adapter (``adapters/hook``) only transports these values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    LAUNCH_SECURITY_ANNOTATION,
)
from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.domain.rewrite import rewrite_domain
from kubevirt_cca.core.vmi.placement import VMI_KIND
from kubevirt_cca.core.vmi.request import CCARequest, parse_request
from kubevirt_cca.core.vmi.requirements import missing_on_selector
from kubevirt_cca.core.vmi.sidecars import (
    ONLY_OUR_SIDECAR,
    describe_entries,
    looks_like_ours,
    parse_sidecars,
)
from kubevirt_cca.core.wire.jsontext import NestedTooDeeply, NotJSONValue, UnreadableJSON, loads
from kubevirt_cca.core.wire.objects import annotations_of, meta_str
from kubevirt_cca.errors import DomainError, HookError, RequestError

UNKNOWN_VMI = "<unnamed VMI>"
_PREFIX = "kubevirt-cca hook"
_NOT_PLAIN = "the VM is not started as a plain VM"


@dataclass(frozen=True)
class DefinedDomain:
    """The answer to one OnDefineDomain call."""

    domain_xml: bytes
    vmi: str
    """``namespace/name`` of the VMI, for logs."""
    realm: bool
    """True when the domain was made a Realm, False when it was returned unchanged."""


@dataclass(frozen=True)
class ReadVMI:
    """The VMI virt-launcher sent, how logs name it, and its CCA request (``None``: none)."""

    vmi: Mapping[str, Any]
    ref: str
    request: CCARequest | None


def read_request(vmi_json: bytes, *, who: str = _PREFIX) -> ReadVMI:
    """Read the VMI and its CCA request; :class:`HookError` (naming ``who``) when either is
    unreadable or invalid: a VMI that may ask for a Realm never gets a plain domain."""
    vmi = read_vmi(vmi_json)
    ref = vmi_ref(vmi)
    try:
        request = parse_request(vmi)
    except RequestError as exc:
        raise HookError(
            f"{who}: refusing to define the domain of VMI {ref}: "
            f"its CCA request is invalid: {exc}; {_NOT_PLAIN}. "
            f"Fix the label {ENABLED_LABEL} or the annotation {LAUNCH_SECURITY_ANNOTATION} "
            "(see docs/vm-owners.md)",
            vmi=ref,
        ) from exc
    return ReadVMI(vmi, ref, request)


def define_domain(
    domain_xml: bytes, vmi_json: bytes, settings: Settings, *, as_sidecar: bool = True
) -> DefinedDomain:
    """The libvirt domain to define for ``vmi_json``, which VMI it was and whether it became a
    Realm; raises :class:`HookError` to refuse.

    ``as_sidecar``: called as a hook sidecar (``OnDefineDomain``), where a CCA VMI may list no
    sidecar but ours; the Plugins path passes ``False`` (it runs after every sidecar).
    """
    read = read_request(vmi_json)
    vmi, ref, request = read.vmi, read.ref, read.request
    if request is None:
        _refuse_stripped_label(vmi, ref)
        return DefinedDomain(domain_xml=domain_xml, vmi=ref, realm=False)
    if as_sidecar:
        _refuse_other_sidecars(vmi, ref)
    _check_node_requirements(vmi, request, settings, ref)
    try:
        rewritten = rewrite_domain(domain_xml, request, settings)
    except DomainError as exc:
        raise HookError(
            f"{_PREFIX}: refusing to define the domain of VMI {ref}: "
            "the VMI asks for an Arm CCA Realm, "
            f"but its domain cannot be made one: {exc}; {_NOT_PLAIN} (see docs/hook.md)",
            vmi=ref,
        ) from exc
    return DefinedDomain(domain_xml=rewritten.encode("utf-8"), vmi=ref, realm=True)


def _refuse_stripped_label(vmi: Mapping[str, Any], ref: str) -> None:
    """Admission puts our hook entry only on CCA VMIs: seen on a VMI without the label, the
    label was removed afterwards, and the VMI asked for a Realm. (Our other annotations
    without the label are refused by the request parser, core/vmi/placement.py.)"""
    if any(looks_like_ours(entry) for entry in parse_sidecars(annotations_of(vmi)).entries):
        raise HookError(
            f"{_PREFIX}: refusing to define the domain of VMI {ref}: "
            f"it carries kubevirt-cca's hook entry in {HOOK_SIDECARS_ANNOTATION} but not the label "
            f"{ENABLED_LABEL}; kubevirt-cca adds that entry only to VMIs that ask for a Realm, "
            f"so the label was removed after admission; {_NOT_PLAIN}. Recreate the VMI from its VM "
            "(see docs/security.md)",
            vmi=ref,
        )


def _refuse_other_sidecars(vmi: Mapping[str, Any], ref: str) -> None:
    """Defence in depth behind admission (issue 21): a CCA VMI whose hook sidecar list holds
    anything but one entry of ours. KubeVirt starts one sidecar per entry, so with a single
    entry that entry is this process; with more, another sidecar may be called after this one
    (and strip the Realm) or instead of it, and this call may be the only chance to say no."""
    parsed = parse_sidecars(annotations_of(vmi))
    if parsed.violations:
        problem = f"it cannot be read ({parsed.violations[0].message})"
    else:
        others = [e for e in parsed.entries if not looks_like_ours(e)]
        if not others and len(parsed.entries) <= 1:
            return
        others = others or list(parsed.entries[1:])
        problem = f"it lists {describe_entries(others)} besides kubevirt-cca's"
    raise HookError(
        f"{_PREFIX}: refusing to define the domain of VMI {ref}: it asks for an Arm CCA Realm, "
        f"but {HOOK_SIDECARS_ANNOTATION}: {problem}; {ONLY_OUR_SIDECAR}, so it is not started. "
        "Remove the other entries and recreate the VMI (see docs/security.md)",
        vmi=ref,
    )


def _check_node_requirements(
    vmi: Mapping[str, Any], request: CCARequest, settings: Settings, ref: str
) -> None:
    """Refuse a parameter the VMI was not scheduled to a node that honours it in this dialect.

    The hook cannot see node labels from the launcher pod. What it can see is the VMI's own
    ``spec.nodeSelector``: admission put there the label for each parameter under the dialect
    it resolved, and the scheduler placed the pod only on a node carrying them. A parameter
    whose label (for *this* hook's dialect) is not there was never checked against this node
    (another dialect at admission, a bypassed webhook), so writing it could have it dropped or
    refused late by QEMU: fail closed instead.
    """
    spec = vmi.get("spec")
    selector = spec.get("nodeSelector") if isinstance(spec, Mapping) else None
    missing = missing_on_selector(request, settings.dialect, selector)
    if missing:
        wanted = ", ".join(f"{r.capability} (node label {r.label})" for r in missing)
        raise HookError(
            f"{_PREFIX}: refusing to define the domain of VMI {ref}: it asks for {wanted}, "
            "but its spec.nodeSelector does not hold that label, "
            "so nothing checked that this node's stack honours it with the "
            f"{settings.dialect.value} dialect; {_NOT_PLAIN}. "
            "Recreate the VMI so kubevirt-cca's admission schedules it (see docs/vm-owners.md)",
            vmi=ref,
        )


def read_vmi(vmi_json: bytes) -> Mapping[str, Any]:
    """The VMI object virt-launcher sent; a :class:`HookError` when it is not one.

    Unreadable input is refused rather than treated as "no Realm requested": the VMI might
    have asked for one, and a Realm must never start as a plain VM.
    """
    try:
        vmi = loads(vmi_json)
    except NotJSONValue as exc:
        raise _unreadable(f"it holds a value JSON cannot carry: {exc.reason}") from exc
    except NestedTooDeeply as exc:
        raise _unreadable("it is nested too deeply") from exc
    except UnreadableJSON as exc:
        if not exc.line:  # no position: the bytes are not text
            raise _unreadable("it is not UTF-8 text") from exc
        raise _unreadable(
            f"it is not valid JSON: {exc.reason} at line {exc.line} column {exc.column}"
        ) from exc
    if not isinstance(vmi, dict):
        raise _unreadable(f"expected a JSON object, got {type(vmi).__name__}")
    kind = vmi.get("kind")
    if kind in (None, ""):
        # virt-launcher marshals the VMI without its type meta; name the kind for the parser.
        return {**vmi, "kind": VMI_KIND}
    if kind != VMI_KIND:
        raise _unreadable(f"expected kind {VMI_KIND}, got {kind!r}")
    return vmi


def vmi_ref(vmi: Mapping[str, Any]) -> str:
    """``namespace/name`` of a VMI, as far as its metadata says.

    Used in log lines and messages: a name that is not a Kubernetes name (newlines, spaces,
    control characters) is shown quoted and escaped, so it cannot forge a log line.
    """
    name, namespace = meta_str(vmi, "name"), meta_str(vmi, "namespace")
    if not name:
        return UNKNOWN_VMI
    ref = f"{namespace}/{name}" if namespace else name
    if _PLAIN_REF.match(ref):
        return ref
    quoted = json.dumps(ref)
    return quoted if len(quoted) <= 200 else quoted[:197] + '..."'


_PLAIN_REF = re.compile(r"\A[a-z0-9][a-z0-9.-]{0,252}(/[a-z0-9][a-z0-9.-]{0,252})?\Z")


def _unreadable(detail: str) -> HookError:
    return HookError(
        f"{_PREFIX}: refusing to define the domain: cannot read the VMI that virt-launcher sent "
        f"({detail}); since it may ask for an Arm CCA Realm, {_NOT_PLAIN}",
        vmi=UNKNOWN_VMI,
    )
