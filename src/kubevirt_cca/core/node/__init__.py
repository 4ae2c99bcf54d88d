"""What a node can do: its capabilities, what each layer of its stack honours, and its labels.

Built on ``core/wire`` only::

    capabilities.py  can this host run Realms (libvirt's domain capabilities, host probes)
    honoured.py      what one layer honours; QEMU's ``rme-guest`` answer
    layer_labels.py  the node label keys for what one layer honours
    overrides.py     the cluster admin's per-node override
    labelling.py     what the node labeller writes on its Node, and the patch
"""
