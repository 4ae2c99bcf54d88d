"""Adapters: the parts that touch the outside world (host files, commands, network, Kubernetes).

They translate library and OS errors into :mod:`kubevirt_cca.errors` at their boundary.
"""
