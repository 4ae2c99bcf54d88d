"""Compatibility names: the Plugins path's ``MutateDomain`` decision moved to
:mod:`kubevirt_cca.core.hook.plugin` (issue 16 item 4). Nothing in the package imports this
module; it is kept so branches written against the old path still import, and goes once merged.
"""

from __future__ import annotations

from kubevirt_cca.core.hook.plugin import (
    BOOT,
    INVOCATION_CONTEXTS,
    LIBVIRT_DOMAIN,
    MIGRATION_TARGET,
    PLUGIN_DIALECT,
    MutateCall,
    check_plugin_settings,
    mutate_domain,
)

__all__ = [
    "BOOT", "INVOCATION_CONTEXTS", "LIBVIRT_DOMAIN", "MIGRATION_TARGET", "PLUGIN_DIALECT",
    "MutateCall", "check_plugin_settings", "mutate_domain",
]
