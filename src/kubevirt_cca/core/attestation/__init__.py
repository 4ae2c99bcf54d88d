"""Arm CCA attestation tokens: the claim keys, the parser, the trust anchors, the checks.

Pure: every function takes bytes or values and returns values; reading files and driving
configfs-tsm happen in :mod:`kubevirt_cca.adapters.configfs` and the ``attest`` command.
"""
