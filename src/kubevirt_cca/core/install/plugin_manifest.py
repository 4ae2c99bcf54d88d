"""The Plugins path's install object (VEP 190): the cluster-scoped ``Plugin`` an admin applies.

On the Plugins path KubeVirt does not start our container: it only dials the socket named here,
a sidecar socket under ``/var/run/kubevirt-plugin/kubevirt-cca/``, conditioned on the enable
label, failing closed. The container serving it is injected into labelled virt-launcher pods
by admission (``core/admission/launcher_pod.py``). ``deploy/plugin/`` is this object.
"""

from __future__ import annotations

from typing import Any

from kubevirt_cca.constants import ENABLED_LABEL, PLUGIN_NAME, PLUGIN_SOCKET

# KubeVirt's domain-hook CEL sees the VMI with Go field names. Any value of the label calls the
# hook: a value other than "true" is then refused by the hook (fail closed), never skipped.
PLUGIN_CONDITION = f'"{ENABLED_LABEL}" in vmi.Labels'


def plugin_object() -> dict[str, Any]:
    """The cluster-scoped Plugin object the install ships."""
    return {
        "apiVersion": "plugin.kubevirt.io/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": PLUGIN_NAME, "labels": {"app.kubernetes.io/name": "kubevirt-cca"}},
        "spec": {
            "condition": PLUGIN_CONDITION,
            "failureStrategy": "Fail",
            "domainHooks": [
                {
                    "sidecar": {"socketPath": PLUGIN_SOCKET},
                    "condition": PLUGIN_CONDITION,
                    "failureStrategy": "Fail",
                }
            ],
        },
    }
