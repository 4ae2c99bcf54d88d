"""What a VMI asks for, where it may say so, what it needs from a node, and which webhooks see it.

Built on ``core/node``, ``core/cluster`` and ``core/wire``::

    placement.py      where kubevirt-cca's keys may sit, and the misplaced ones
    request.py        the CCA request of a VMI or a VMI template
    requirements.py   the node labels a CCA request needs
    sidecars.py       kubevirt-cca's entry in ``hooks.kubevirt.io/hookSidecars``
    webhook_table.py  every admission endpoint, its kinds and failure policy
"""
