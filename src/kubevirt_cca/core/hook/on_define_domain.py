"""The hook sidecar's entry point: KubeVirt's ``OnDefineDomain`` (hook API v1alpha1..v1alpha3).

The sidecar gets libvirt domain XML only; the decision is :func:`~.decision.define_domain`,
the same one the Plugins path's ``MutateDomain`` uses for libvirt domains (``mutate_domain.py``).
"""

from __future__ import annotations

from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.hook.decision import define_domain


def on_define_domain(domain_xml: bytes, vmi_json: bytes, settings: Settings) -> bytes:
    """The domain XML to define for ``vmi_json``; raises :class:`HookError` to refuse."""
    return define_domain(domain_xml, vmi_json, settings).domain_xml
