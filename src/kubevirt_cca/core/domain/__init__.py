"""libvirt domains: the Realm rewrite, a built-in arm64 domain, and foreign QEMU arguments.

Built on ``core/vmi``, ``core/cluster`` and ``core/wire``::

    rewrite.py     libvirt domain XML in, the same domain made into a Realm out
    basedomain.py  a domain shaped like what virt-launcher generates for a VMI
    qemuargs.py    what of libvirt's QEMU namespace a Realm's domain may carry
"""
