"""Property tests: whatever pod arrives, the pod webhook's decision is total (no exception), only
touches labelled virt-launcher pods, and never lets such a pod through unchanged in plugin mode
unless our container is already there."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    ENABLED_LABEL,
    PLUGIN_CONTAINER,
    PLUGIN_NAME,
    PLUGIN_SOCKETS_VOLUME,
    PLUGINS_FEATURE_GATE,
)
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates
from kubevirt_cca.core.admission.launcher_pod import is_cca_launcher_pod, plan_launcher_pod
from kubevirt_cca.core.cluster.settings import Dialect, Settings

PLUGIN = ClusterView(
    gates=FeatureGates(frozenset({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE})),
    settings=Settings(dialect=Dialect.QEMU_COMMANDLINE),
    plugin_names=frozenset({PLUGIN_NAME}),
    kubevirt_version="v1.10.0",
)

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
labels = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from([ENABLED_LABEL, "kubevirt.io", "app"]),
        st.one_of(st.sampled_from(["true", "virt-launcher", "x"]), json_values),
        max_size=3,
    ),
)
containers = st.one_of(
    json_values,
    st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["compute", PLUGIN_CONTAINER, "other"]),
                    "image": st.just("i"),
                }
            ),
        ),
        max_size=3,
    ),
)
volumes = st.one_of(
    json_values,
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from([PLUGIN_SOCKETS_VOLUME, "private"]), "emptyDir": st.just({})}
        ),
        max_size=3,
    ),
)
pods = st.fixed_dictionaries(
    {
        "metadata": st.one_of(json_values, st.fixed_dictionaries({"labels": labels})),
        "spec": st.one_of(
            json_values, st.fixed_dictionaries({"containers": containers, "volumes": volumes})
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(pods)
def test_any_pod_gets_a_total_answer(pod: dict[str, Any]) -> None:
    ops, refused = plan_launcher_pod(pod, PLUGIN)
    assert not (ops and refused)
    if not is_cca_launcher_pod(pod):
        assert (ops, refused) == ([], [])
        return
    if ops:
        patched = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
        # a container without a name (the API server refuses one, the fuzzer makes them) is
        # simply not ours
        names = [c.get("name") for c in patched["spec"]["containers"] if isinstance(c, dict)]
        assert names.count(PLUGIN_CONTAINER) == 1
    elif not refused:
        # left alone only when our container is already there
        assert any(
            isinstance(c, dict) and c.get("name") == PLUGIN_CONTAINER
            for c in pod["spec"]["containers"]
        )
