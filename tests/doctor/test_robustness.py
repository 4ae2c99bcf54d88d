"""doctor reads whatever the API server returns: any JSON in any object must give check results,
never an exception (a traceback would hide every other check)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.core.doctor import Check, Expected, Read, Snapshot, run_checks
from kubevirt_cca.core.install import InstallOptions
from tests.doctor.cluster import CHECK_NAMES

# Base64 and PEM-looking text too, so the certificate parsing is reached.
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=8),
    st.sampled_from(
        [
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            "",
            "true",
            "arm64",
            "Fail",
            "Exists",
            "webhook",
            "{}",
            "[1]",
        ]
    ),
)
_KEYS = st.sampled_from(
    [
        "metadata",
        "spec",
        "status",
        "webhooks",
        "clientConfig",
        "service",
        "caBundle",
        "name",
        "namespace",
        "labels",
        "annotations",
        "data",
        "tls.crt",
        "items",
        "configuration",
        "developerConfiguration",
        "featureGates",
        "disabledFeatureGates",
        "objectSelector",
        "matchLabels",
        "matchExpressions",
        "failurePolicy",
        "endpoints",
        "conditions",
        "ready",
        "kubernetes.io/arch",
        "kubevirt.io/cca",
        "cca.kubevirt.io/detection",
        "taints",
        "phase",
        "nodeName",
        "template",
        "containers",
        "initContainers",
        "image",
        "selector",
        "path",
    ]
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=25,
)
READS = st.one_of(
    st.just(Read()),
    st.builds(Read, value=JSON),
    st.builds(Read, value=st.lists(JSON, max_size=3)),
    st.builds(Read, error=st.text(min_size=1, max_size=10)),
)


SOURCES = (
    "kubevirts",
    "plugins",
    "config_map",
    "mutating",
    "validating",
    "service",
    "endpoint_slices",
    "certificate_config_map",
    "certificate_requests",
    "deployment",
    "daemon_set",
    "pods",
    "nodes",
    "vmi_crd",
)

# The reads of objects the install creates (not KubeVirt's, nor the cluster's nodes).
INSTALL_OBJECTS = (
    "config_map",
    "mutating",
    "validating",
    "service",
    "certificate_config_map",
    "deployment",
    "daemon_set",
)


@settings(max_examples=250, deadline=None)
@given(reads=st.fixed_dictionaries(dict.fromkeys(SOURCES, READS)))
def test_any_cluster_state_gives_one_result_per_check(reads: dict[str, Any]) -> None:
    lists = ("kubevirts", "plugins", "endpoint_slices", "pods", "nodes", "certificate_requests")
    for name in lists:
        value = reads[name].value  # lists come back as lists (or not at all)
        if value is not None and not isinstance(value, list):
            reads[name] = Read(value=[value])
    snapshot = Snapshot(now=datetime.now(UTC), **reads)
    checks = run_checks(snapshot, Expected(options=InstallOptions()))
    # Every install object not found (and no policy expected): the one "not installed" line.
    nothing = all(reads[name] == Read() for name in INSTALL_OBJECTS)
    assert tuple(c.name for c in checks) == (("kubevirt-cca",) if nothing else CHECK_NAMES)
    assert all(isinstance(c, Check) and c.summary for c in checks)
