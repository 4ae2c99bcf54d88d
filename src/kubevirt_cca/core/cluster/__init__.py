"""The cluster's choices the core decides with: how a domain becomes a Realm, which extension point.

Built on ``core/wire`` only::

    settings.py     XML dialect, CCA firmware, virtio IOMMU policy
    integration.py  hook sidecars or Plugins (VEP 190), from the KubeVirt CR
"""
