"""The Plugins path's domain hook (KubeVirt VEP 190): ``MutateDomain``'s decision.

virt-launcher calls ``DomainHookService/MutateDomain`` with the domain type, the libvirt domain
XML, the VMI as JSON and why it defines the domain (``Boot`` or ``MigrationTarget``). The
decision is the hook sidecar's (:func:`~.decision.define_domain`): a VMI that asks
for no Realm gets its domain back unchanged, one that asks for a Realm gets the rewrite, and
anything else is a :class:`HookError`. Two things differ on this path:

* only the ``qemu-commandline`` dialect survives KubeVirt's rebuild of the domain, so the
  settings must carry it (:func:`check_plugin_settings`; the ``hook`` command checks it at
  start-up, and every call checks it again rather than emit a domain KubeVirt would refuse);
* the domain document has a type; a Realm can only be written into ``libvirt`` XML.

The invocation context does not change the answer: a domain defined for a CCA VMI is a Realm
whether it boots or is a migration target (admission refuses migrating Realms; if one gets
here anyway, the target is still a Realm and QEMU refuses the migration, so the VM never runs
unprotected). virt-launcher may define the domain up to three times per boot, each time with
what it got back before: the rewrite is idempotent, also when the qemu namespace comes back
unprefixed (``<commandline xmlns="http://libvirt.org/schemas/domain/qemu/1.0">``).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.hook.decision import (
    DefinedDomain,
    define_domain,
    read_request,
    read_vmi,
    vmi_ref,
)
from kubevirt_cca.errors import DomainError, HookError, SettingsError

LIBVIRT_DOMAIN = "libvirt"
BOOT = "Boot"
MIGRATION_TARGET = "MigrationTarget"
PLUGIN_DIALECT = Dialect.QEMU_COMMANDLINE
_PREFIX = "kubevirt-cca plugin"


@dataclass(frozen=True)
class MutateCall:
    """One ``MutateDomain`` request, as plain values."""

    domain_type: str
    domain: bytes
    vmi: bytes
    invocation_context: str


def check_plugin_settings(settings: Settings) -> None:
    """:class:`SettingsError` unless the settings can be served on the Plugins path."""
    if settings.dialect is not PLUGIN_DIALECT:
        raise SettingsError(
            f"dialect {settings.dialect.value} cannot be served as a KubeVirt Plugin: "
            "on the Plugins path KubeVirt rebuilds the domain and keeps only <qemu:commandline> "
            f"(<launchSecurity type='cca'> is refused); use --dialect {PLUGIN_DIALECT.value} "
            "(kubevirt-cca-config: dialect: qemu-commandline)"
        )


def mutate_domain(call: MutateCall, settings: Settings) -> DefinedDomain:
    """The domain to define for ``call``; raises :class:`HookError` to refuse."""
    try:
        check_plugin_settings(settings)
    except SettingsError as exc:
        raise HookError(
            f"{_PREFIX}: refusing to define the domain: {exc}", vmi=vmi_ref(read_vmi(call.vmi))
        ) from exc
    if call.domain_type != LIBVIRT_DOMAIN:
        return _foreign_domain(call)
    # The Plugins path runs after every hook sidecar: the owner's own sidecars cannot undo it.
    return define_domain(call.domain, call.vmi, settings, as_sidecar=False)


def _foreign_domain(call: MutateCall) -> DefinedDomain:
    """A domain document that is not libvirt XML: unchanged for plain VMIs, refused for Realms."""
    read = read_request(call.vmi, who=_PREFIX)
    ref, request = read.ref, read.request
    if request is None:
        return DefinedDomain(domain_xml=call.domain, vmi=ref, realm=False)
    problem = DomainError(f"domain type {call.domain_type!r} is not {LIBVIRT_DOMAIN!r}")
    raise HookError(
        f"{_PREFIX}: refusing to define the domain of VMI {ref}: "
        "the VMI asks for an Arm CCA Realm, "
        f"but virt-launcher sent a domain of type {call.domain_type!r}, "
        f"and a Realm can only be written into {LIBVIRT_DOMAIN!r} domain XML; "
        "the VM is not started as a plain VM",
        vmi=ref,
    ) from problem
