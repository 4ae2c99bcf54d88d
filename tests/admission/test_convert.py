"""convert: the native form becomes label + annotation asking for exactly the same Realm."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.convert import Conversion, convert, native_field, to_native
from kubevirt_cca.core.vmi.request import parse_request
from kubevirt_cca.errors import RequestError
from tests.admission.helpers import template_node

VM: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachine",
    "metadata": {"name": "vm", "labels": {"app": "x"}},
    "spec": {
        "runStrategy": "Always",
        "template": {
            "metadata": {"labels": {"kubevirt.io/vm": "vm"}},
            "spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}},
        },
    },
}
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "measurementAlgo": st.sampled_from(["sha256", "sha512"]),
        "measurementLog": st.sampled_from([True, False, "yes", "no"]),
        "personalizationValue": st.binary(min_size=64, max_size=64).map(
            lambda b: base64.b64encode(b).decode()
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    params=st.one_of(st.none(), PARAMS),
    kind=st.sampled_from(
        [
            "VirtualMachineInstance",
            "VirtualMachine",
            "VirtualMachineInstanceReplicaSet",
            "VirtualMachinePool",
        ]
    ),
)
def test_convert_keeps_the_request_and_everything_else(
    params: dict[str, Any] | None, kind: str
) -> None:
    obj = (
        copy.deepcopy(VM)
        if kind == "VirtualMachine"
        else {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": {"name": "o"}, "spec": {}}
    )
    template_node(obj).setdefault("spec", {}).setdefault("domain", {})["launchSecurity"] = {
        "cca": params
    }
    before = parse_request(obj)
    result = convert(obj)
    assert native_field(result.obj) is None
    assert parse_request(result.obj) == before
    node = template_node(result.obj)
    assert node["metadata"]["labels"][ENABLED_LABEL] == "true"
    assert (LAUNCH_SECURITY_ANNOTATION in node["metadata"].get("annotations", {})) == bool(params)
    # Nothing else moved: undo the two metadata additions and compare.
    node["metadata"]["labels"].pop(ENABLED_LABEL)
    node["metadata"].get("annotations", {}).pop(LAUNCH_SECURITY_ANNOTATION, None)
    original = copy.deepcopy(obj)
    del template_node(original)["spec"]["domain"]["launchSecurity"]
    for meta in (template_node(original).setdefault("metadata", {}), node["metadata"]):
        for key in ("labels", "annotations"):
            if not meta.get(key):
                meta.pop(key, None)
    assert result.obj == original
    # Converting again changes nothing.
    assert convert(result.obj).changes == ()


def test_other_launch_security_is_kept_and_refused() -> None:
    obj = copy.deepcopy(VM)
    template_node(obj)["spec"]["domain"]["launchSecurity"] = {"cca": {}, "sev": {}}
    with pytest.raises(RequestError, match="cannot also use sev"):
        convert(obj)


@settings(max_examples=100, deadline=None)
@given(
    params=st.one_of(st.none(), PARAMS),
    kind=st.sampled_from(
        [
            "VirtualMachineInstance",
            "VirtualMachine",
            "VirtualMachineInstanceReplicaSet",
            "VirtualMachinePool",
        ]
    ),
)
def test_to_native_is_convert_reversed(params: dict[str, Any] | None, kind: str) -> None:
    """The hand-over to a KubeVirt that knows CCA itself: the same request, in its field."""
    native = (
        copy.deepcopy(VM)
        if kind == "VirtualMachine"
        else {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": {"name": "o"}, "spec": {}}
    )
    template_node(native).setdefault("spec", {}).setdefault("domain", {})["launchSecurity"] = {
        "cca": params
    }
    labelled = convert(native).obj
    back = to_native(labelled)
    assert native_field(back.obj) is not None
    assert parse_request(back.obj) == parse_request(native)
    node = template_node(back.obj)
    assert ENABLED_LABEL not in node["metadata"].get("labels", {})
    assert LAUNCH_SECURITY_ANNOTATION not in node["metadata"].get("annotations", {})
    assert convert(back.obj).obj == labelled
    assert to_native(back.obj).changes == ()  # already native: nothing to do


def test_to_native_leaves_a_plain_vm_alone_and_refuses_a_bad_request() -> None:
    assert to_native(VM) == Conversion(VM, ())
    bad = copy.deepcopy(VM)
    template_node(bad)["metadata"]["labels"][ENABLED_LABEL] = "true"
    template_node(bad)["metadata"]["annotations"] = {
        LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo":"md5"}'
    }
    with pytest.raises(RequestError, match="measurementAlgo"):
        to_native(bad)


def test_an_unknown_kind_with_the_native_form_is_not_understood(tmp_path: Any) -> None:
    from tests.cli.run import kubevirt_cca

    manifest = tmp_path / "vmsnap.yaml"
    manifest.write_text(
        "apiVersion: example.com/v1\nkind: VirtualMachineTemplateThing\nmetadata: {name: t}\n"
        "spec:\n  domain:\n    launchSecurity:\n      cca: {measurementAlgo: sha256}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    done = kubevirt_cca("convert", str(manifest))
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        "kind 'VirtualMachineTemplateThing' is not understood, but it carries VEP 129's "
        "native form at spec.domain.launchSecurity.cca"
    ) in done.stderr
    assert "nothing in VEP 129's native form" not in done.stderr
    # A kind convert does not know, without the native form, is still printed as it is.
    plain = tmp_path / "cm.yaml"
    plain.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    kept = kubevirt_cca("convert", str(plain))
    assert kept.returncode == 0
    assert "kind: ConfigMap" in kept.stdout
