"""Expectations written out by hand (not built from the code under test) that more than one
lane checks: the node policy's refusal of a label the labeller does not own is asserted by the
CEL evaluation in tests/install and by the real kube-apiserver in tests/peers/apiserver."""

from __future__ import annotations

# The fixed set of labels the labeller may write, in the policy's order (issues 13 and 15).
LABELLER_LABELS_REFUSAL = (
    "kubevirt-cca-labeller may only change the labels kubevirt.io/cca, "
    "cca.kubevirt.io/measurement-algo-sha256, cca.kubevirt.io/measurement-algo-sha384, "
    "cca.kubevirt.io/measurement-algo-sha512, cca.kubevirt.io/personalization-value, "
    "cca.kubevirt.io/measurement-log, cca.kubevirt.io/rme-guest-measurement-algo-sha256, "
    "cca.kubevirt.io/rme-guest-measurement-algo-sha384, "
    "cca.kubevirt.io/rme-guest-measurement-algo-sha512, "
    "cca.kubevirt.io/rme-guest-personalization-value, "
    "cca.kubevirt.io/rme-guest-measurement-log, not: "
)
"""Followed by the key refused."""
