"""The hook: the domain virt-launcher should define for a VMI, for both ways KubeVirt asks.

- ``decision``: the one decision (read the VMI and its request, refuse what cannot be a Realm,
  rewrite the domain) and the values it returns;
- ``on_define_domain``: the hook sidecar's entry point (``OnDefineDomain``);
- ``mutate_domain``: the Plugins path's entry point (``MutateDomain``, VEP 190): the forced dialect
  and the domain type, then the same decision.

The gRPC adapters (``adapters/hook``) only transport these values. The names below are the
sidecar's, importable from here as before the split.
"""

from __future__ import annotations

from kubevirt_cca.core.hook.decision import (
    UNKNOWN_VMI,
    DefinedDomain,
    ReadVMI,
    define_domain,
    read_request,
    read_vmi,
    vmi_ref,
)
from kubevirt_cca.core.hook.on_define_domain import on_define_domain

__all__ = [
    "UNKNOWN_VMI",
    "DefinedDomain",
    "ReadVMI",
    "define_domain",
    "on_define_domain",
    "read_request",
    "read_vmi",
    "vmi_ref",
]
