"""What a node can do: its capabilities, what each layer of its stack honours, and its labels.

Built on ``core/wire`` only::

    domain_capabilities.py  what libvirt says about CCA (``virsh domcapabilities``)
    detection_report.py     can this host run Realms: libvirt decides, host probes explain
    honoured.py      what one layer honours; QEMU's ``rme-guest`` answer
    labels.py        the node label keys for what one layer honours; a node's labels
    overrides.py     the cluster admin's per-node override
    labelling.py     what the node labeller writes on its Node, and the patch
"""
