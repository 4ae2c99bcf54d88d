"""The uninstall plan (core/install/uninstall_plan.py): every object of every install variant in a
safe order, only our node keys, CCA VMs found; and the command's usage and API errors."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.cli import main
from kubevirt_cca.constants import NODE_DETECTION_ANNOTATION
from kubevirt_cca.core.install import (
    CERT_MANAGER,
    SELF_SIGNED,
    InstallOptions,
    install_objects,
    object_key,
)
from kubevirt_cca.core.install.uninstall_plan import (
    STEPS,
    ObjectRef,
    asks_for_cca,
    node_cleanup,
    uninstall_objects,
    uninstall_steps,
)
from kubevirt_cca.core.node.labels import is_owned_label

OPTIONS = InstallOptions(namespace="cca-system", kubevirt_namespace="virt")


def steps() -> dict[str, list[ObjectRef]]:
    return {
        s.name: list(s.objects)
        for s in uninstall_steps(uninstall_objects(OPTIONS, load_policies()))
    }


def test_every_object_of_every_variant_is_removed_once() -> None:
    planned = [ref for refs in steps().values() for ref in refs]
    assert len(planned) == len(set(planned))
    for mode in (CERT_MANAGER, SELF_SIGNED):
        for monitoring in (False, True):
            variant = InstallOptions(
                namespace="cca-system",
                kubevirt_namespace="virt",
                certificates=mode,
                monitoring=monitoring,
            )
            for obj in install_objects(variant, load_policies()):
                assert ObjectRef.of(obj) in planned, object_key(obj)
    kinds = {ref.kind for ref in planned}
    assert {"Plugin", "Secret", "PodMonitor", "Issuer", "CronJob"} <= kinds


def test_the_steps_come_in_the_safe_order() -> None:
    plan = steps()
    assert list(plan) == list(STEPS)
    admission = plan["admission"]
    # The webhook configurations first, then the Plugin, then each binding before its policy.
    assert [r.kind for r in admission[:3]] == [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "Plugin",
    ]
    kinds = [r.kind for r in admission[3:]]
    assert kinds == sorted(kinds, key=lambda k: k != "ValidatingAdmissionPolicyBinding")
    assert plan["workloads"][0] == ObjectRef(
        "apps/v1", "DaemonSet", "kubevirt-cca-labeller", "cca-system"
    )
    assert {r.name for r in plan["labeller restriction"]} == {
        "kubevirt-cca-labeller-node-restriction",
        "kubevirt-cca-labeller-events",
    }
    assert not [r for r in admission if "labeller" in r.name]
    assert plan["node labels"] == []
    assert plan["namespace"] == [ObjectRef("v1", "Namespace", "cca-system")]
    # The webhook's Role in KubeVirt's namespace, never that namespace itself.
    assert (
        ObjectRef("rbac.authorization.k8s.io/v1", "Role", "kubevirt-cca-webhook", "virt")
        in (plan["rbac"])
    )
    namespaces = [r for refs in plan.values() for r in refs if r.kind == "Namespace"]
    assert namespaces == [ObjectRef("v1", "Namespace", "cca-system")]


KEYS = st.one_of(
    st.sampled_from(
        [
            "kubevirt.io/cca",
            "cca.kubevirt.io/measurement-algo-sha256",
            "cca.kubevirt.io/measurement-algo-sha999",
            "cca.kubevirt.io/rme-guest-measurement-log",
            "cca.kubevirt.io/enabled",
            "cca.kubevirt.io/libvirt-honours",
            "kubevirt.io/schedulable",
            "kubernetes.io/arch",
            "example.com/rack",
        ]
    ),
    st.from_regex(r"\A[a-z]{1,8}\.[a-z]{2,4}/[a-z-]{1,12}\Z"),
)


@given(
    labels=st.dictionaries(KEYS, st.sampled_from(["true", "false", ""])),
    annotations=st.dictionaries(
        st.sampled_from([NODE_DETECTION_ANNOTATION, "cca.kubevirt.io/libvirt-honours", "a.b/c"]),
        st.just("x"),
    ),
)
def test_node_cleanup_names_only_our_keys(
    labels: dict[str, str], annotations: dict[str, str]
) -> None:
    cleanup = node_cleanup(
        {"metadata": {"name": "n", "labels": labels, "annotations": annotations}}
    )
    patch = cleanup.patch["metadata"]
    assert set(patch.get("labels", {})) == {k for k in labels if is_owned_label(k)}
    assert all(value is None for value in patch.get("labels", {}).values())
    # The admin's override annotation stays; only the detection report goes.
    assert patch.get("annotations", {}) == (
        {NODE_DETECTION_ANNOTATION: None} if NODE_DETECTION_ANNOTATION in annotations else {}
    )
    assert cleanup.changes == bool(patch)


def test_a_skip_node_is_left_alone() -> None:
    cleanup = node_cleanup(
        {
            "metadata": {
                "name": "n",
                "labels": {"kubevirt.io/cca": "true"},
                "annotations": {"node-labeller.kubevirt.io/skip-node": "true"},
            }
        }
    )
    assert cleanup.skipped and not cleanup.changes


@pytest.mark.parametrize(
    ("obj", "asks"),
    [
        ({"metadata": {"labels": {"cca.kubevirt.io/enabled": "true"}}}, True),
        ({"metadata": {"labels": {"cca.kubevirt.io/enabled": "yes"}}}, True),
        (
            {
                "metadata": {},
                "spec": {"template": {"metadata": {"labels": {"cca.kubevirt.io/enabled": "true"}}}},
            },
            True,
        ),
        ({"metadata": {"labels": {"app": "db"}}, "spec": {"template": {}}}, False),
        ({"metadata": {"annotations": {"cca.kubevirt.io/enabled": "true"}}}, False),
    ],
)
def test_what_asks_for_cca(obj: dict[str, object], asks: bool) -> None:
    assert asks_for_cca(obj) is asks


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_a_bad_namespace_is_a_usage_error_naming_the_field() -> None:
    code, out, err = run_cli(
        "uninstall", "--namespace", "Not_A_Name", "--server", "http://127.0.0.1:9"
    )
    assert code == 2
    assert out == ""
    assert "kubevirt-cca uninstall: error: namespace: expected a namespace name" in err
    assert "Traceback" not in err


def test_an_unreachable_api_server_is_one_line_and_changes_nothing() -> None:
    code, out, err = run_cli("uninstall", "--server", "http://127.0.0.1:9", "--dry-run")
    assert code == 1
    assert out == ""
    assert err.startswith("kubevirt-cca uninstall: error: list virtualmachineinstances: ")
    assert "could not be reached" in err
    assert "Traceback" not in err
