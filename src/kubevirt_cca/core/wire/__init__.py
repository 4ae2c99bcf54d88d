"""Wire formats the core reads and writes, shared by every feature; the lowest layer of the core.

Nothing here knows a VMI, a node or a cluster setting::

    objects.py          a Kubernetes object's metadata
    json_patch.py       RFC 6902 JSON patch operations and RFC 6901 pointers
    jsontext.py         reading JSON text, checking parsed values are JSON
    libvirtxml.py       reading libvirt XML safely
    xmltree.py          editing an lxml tree
    report_envelope.py  the JSON envelope of every ``--output json`` report
"""
