"""Compatibility names for the Plugins path's former home (issue 16 item 4 split this module).

The Plugin object is an install object (:mod:`kubevirt_cca.core.install.plugin`); the launcher
pod patch is admission's (:mod:`kubevirt_cca.core.admission.launcher_pod`); the names and paths
are in :mod:`kubevirt_cca.constants`. Nothing in the package imports this module; it is kept
only so branches written against the old path still import, and goes once they are merged.
"""

from __future__ import annotations

from kubevirt_cca.constants import (
    LAUNCHER_LABEL,
    LAUNCHER_LABEL_VALUE,
    PLUGIN_CONTAINER,
    PLUGIN_NAME,
    PLUGIN_SOCKET,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SOCKET_ROOT,
    PLUGIN_SOCKETS_VOLUME,
)
from kubevirt_cca.core.admission.launcher_pod import (
    QEMU_UID,
    is_cca_launcher_pod,
    plugin_container,
    pod_patch,
)
from kubevirt_cca.core.install.plugin import PLUGIN_CONDITION, plugin_object

__all__ = [
    "LAUNCHER_LABEL", "LAUNCHER_LABEL_VALUE", "PLUGIN_CONDITION", "PLUGIN_CONTAINER",
    "PLUGIN_NAME", "PLUGIN_SOCKET", "PLUGIN_SOCKETS_VOLUME", "PLUGIN_SOCKET_DIR",
    "PLUGIN_SOCKET_ROOT", "QEMU_UID", "is_cca_launcher_pod", "plugin_container",
    "plugin_object", "pod_patch",
]
