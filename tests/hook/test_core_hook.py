"""The hook's pure decision (core/hook/), without gRPC: tables and properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    LAUNCH_SECURITY_ANNOTATION,
)
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.domain.rewrite import rewrite_domain
from kubevirt_cca.core.hook import (
    UNKNOWN_VMI,
    define_domain,
    on_define_domain,
    read_vmi,
    vmi_ref,
)
from kubevirt_cca.core.hook.mutate_domain import MutateCall, mutate_domain
from kubevirt_cca.core.vmi.request import CCARequest, parse_request
from kubevirt_cca.errors import DomainError, HookError, RequestError
from tests.hook.support import ARM64_MINIMAL, HONOURS_EVERYTHING
from tests.narrow import find

DOMAIN = ARM64_MINIMAL
X86_DOMAIN = DOMAIN.replace(b"aarch64", b"x86_64").replace(b"'virt'", b"'q35'")
SETTINGS = Settings()


def vmi(
    labels: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
    *,
    node_selector: dict[str, str] | None = None,
    **metadata: Any,
) -> bytes:
    """A VMI as virt-launcher sends it, scheduled (by default) on a node honouring everything."""
    meta: dict[str, Any] = {"namespace": "ns", "name": "v", **metadata}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    selector = HONOURS_EVERYTHING if node_selector is None else node_selector
    return json.dumps(
        {"metadata": meta, "spec": {"domain": {"devices": {}}, "nodeSelector": selector}}
    ).encode()


CCA = vmi({ENABLED_LABEL: "true"})


def test_plain_vmi_gets_the_very_same_bytes() -> None:
    answer = define_domain(DOMAIN, vmi({"app": "web"}), SETTINGS)
    assert answer.domain_xml is DOMAIN
    assert (answer.vmi, answer.realm) == ("ns/v", False)


@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
def test_cca_vmi_gets_the_core_rewrite(dialect: Dialect) -> None:
    parameters = {"measurementAlgo": "sha512", "measurementLog": "no"}
    settings = Settings(dialect=dialect)
    answer = define_domain(
        DOMAIN,
        vmi({ENABLED_LABEL: "true"}, {LAUNCH_SECURITY_ANNOTATION: json.dumps(parameters)}),
        settings,
    )
    expected = rewrite_domain(
        DOMAIN, CCARequest(measurement_algo="sha512", measurement_log=False), settings
    )
    assert answer.realm and answer.domain_xml == expected.encode()
    assert (
        on_define_domain(DOMAIN, CCA, settings)
        == rewrite_domain(DOMAIN, CCARequest(), settings).encode()
    )


def test_refusals_name_the_vmi_and_keep_their_cause() -> None:
    with pytest.raises(HookError) as domain_refusal:
        define_domain(X86_DOMAIN, CCA, SETTINGS)
    assert isinstance(domain_refusal.value.__cause__, DomainError)
    assert domain_refusal.value.vmi == "ns/v"
    assert str(domain_refusal.value) == (
        "kubevirt-cca hook: refusing to define the domain of VMI ns/v: the VMI asks for an Arm "
        "CCA Realm, but its domain cannot be made one: the domain is for x86_64 "
        "(<os><type arch=...>); a CCA Realm needs an aarch64 domain; the VM is not started as a "
        "plain VM (see docs/hook.md)"
    )
    bad = vmi({ENABLED_LABEL: "true"}, {LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo": 1}'})
    with pytest.raises(HookError) as request_refusal:
        define_domain(DOMAIN, bad, SETTINGS)
    assert isinstance(request_refusal.value.__cause__, RequestError)
    assert str(request_refusal.value) == (
        "kubevirt-cca hook: refusing to define the domain of VMI ns/v: its CCA request is "
        "invalid: metadata.annotations[cca.kubevirt.io/launch-security].measurementAlgo: "
        'unsupported value a number; expected one of "sha256", "sha384", "sha512"; the VM is '
        "not started as a plain VM. Fix the label cca.kubevirt.io/enabled or the annotation "
        "cca.kubevirt.io/launch-security (see docs/vm-owners.md)"
    )


def test_a_labelled_vmi_whose_native_cca_was_pruned_is_refused() -> None:
    """Issue 21 item 11: ``launchSecurity: {}`` is what the API server leaves of VEP 129's
    native ``launchSecurity.cca``; the parameters are gone, so the VM does not start."""
    pruned = json.loads(CCA)
    pruned["spec"]["domain"]["launchSecurity"] = {}
    with pytest.raises(HookError) as refusal:
        define_domain(DOMAIN, json.dumps(pruned).encode(), SETTINGS)
    assert isinstance(refusal.value.__cause__, RequestError)
    assert (
        "its CCA request is invalid: spec.domain.launchSecurity: is empty: the API server "
        "dropped cca from VEP 129's native form spec.domain.launchSecurity.cca"
    ) in str(refusal.value)
    # Unlabelled, it is not a CCA VMI: KubeVirt refuses the empty launchSecurity itself.
    plain = json.loads(vmi({"app": "web"}))
    plain["spec"]["domain"]["launchSecurity"] = {}
    raw = json.dumps(plain).encode()
    assert define_domain(DOMAIN, raw, SETTINGS).domain_xml is DOMAIN


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "it is not valid JSON: Expecting value at line 1 column 1"),
        (b"null", "expected a JSON object, got NoneType"),
        (b'"vmi"', "expected a JSON object, got str"),
        (b"\xfe\xff\x00", "it is not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"kind": "Pod"}', "expected kind VirtualMachineInstance, got 'Pod'"),
    ],
)
def test_unreadable_vmi_is_refused(raw: bytes, detail: str) -> None:
    with pytest.raises(HookError) as caught:
        on_define_domain(DOMAIN, raw, SETTINGS)
    assert caught.value.vmi == UNKNOWN_VMI
    message = str(caught.value)
    assert message.startswith(
        "kubevirt-cca hook: refusing to define the domain: cannot read "
        "the VMI that virt-launcher sent ("
    )
    assert detail in message
    assert message.endswith(
        "since it may ask for an Arm CCA Realm, the VM is not started as a plain VM"
    )


@pytest.mark.parametrize("kind", [None, ""])
def test_vmi_without_type_meta_is_read_as_a_vmi(kind: str | None) -> None:
    obj: dict[str, Any] = {"metadata": {"labels": {ENABLED_LABEL: "true"}}}
    if kind is not None:
        obj["kind"] = kind
    assert read_vmi(json.dumps(obj).encode())["kind"] == "VirtualMachineInstance"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"namespace": "ns", "name": "v"}, "ns/v"),
        ({"name": "v"}, "v"),
        ({"namespace": "ns"}, UNKNOWN_VMI),
        ({"namespace": 3, "name": "v"}, "v"),
        ({"name": ["v"]}, UNKNOWN_VMI),
        ("not-a-map", UNKNOWN_VMI),
    ],
)
def test_vmi_ref(metadata: Any, expected: str) -> None:
    assert vmi_ref({"metadata": metadata}) == expected


# --- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_vmi_bytes_either_refuse_or_answer_by_the_parser(raw: bytes) -> None:
    """Whatever virt-launcher sends: a HookError, or unchanged only when no Realm is asked."""
    try:
        answer = define_domain(DOMAIN, raw, SETTINGS)
    except HookError:
        return
    if not answer.realm:
        assert answer.domain_xml is DOMAIN
        assert parse_request(read_vmi(raw)) is None


@SLOW
@given(
    parameters=st.one_of(
        st.text(max_size=40),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {},
            optional={
                "measurementAlgo": st.sampled_from(["sha256", "sha512", "md5", ""]),
                "measurementLog": st.sampled_from([True, False, "yes", "no", "on", 1]),
                "personalizationValue": st.sampled_from(["", "AAAA", "A" * 86 + "==", "%%"]),
            },
        ).map(json.dumps),
    ),
    labels=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
)
def test_a_vmi_asking_for_a_realm_never_gets_a_plain_domain(
    parameters: str, labels: dict[str, str]
) -> None:
    raw = vmi({**labels, ENABLED_LABEL: "true"}, {LAUNCH_SECURITY_ANNOTATION: parameters})
    try:
        answer = on_define_domain(DOMAIN, raw, SETTINGS)
    except HookError:
        return
    assert answer != DOMAIN
    root = etree.fromstring(answer)
    assert find(root, "launchSecurity").get("type") == "cca"
    assert find(root, "os/loader").get("type") == "rom"
    assert root.find("os/nvram") is None


# --- issue 21: as a sidecar, the hook refuses a CCA VMI that lists any sidecar beside ours -------

OURS = {"image": "kubevirt-cca:0.1.0", "args": ["hook", "--dialect", "vep"]}
STRIP = {"image": "registry.example/strip:1", "args": ["--version", "v1alpha3"]}


def with_sidecars(entries: Any) -> bytes:
    raw = entries if isinstance(entries, str) else json.dumps(entries)
    return vmi({ENABLED_LABEL: "true"}, {HOOK_SIDECARS_ANNOTATION: raw})


def test_a_cca_vmi_listing_only_our_sidecar_is_made_a_realm() -> None:
    assert define_domain(DOMAIN, with_sidecars([OURS]), SETTINGS).realm


@pytest.mark.parametrize(
    ("entries", "named"),
    [
        ([OURS, STRIP], "1 hook sidecar entry (image 'registry.example/strip:1') besides"),
        ([STRIP, OURS], "1 hook sidecar entry (image 'registry.example/strip:1') besides"),
        ([STRIP], "1 hook sidecar entry (image 'registry.example/strip:1') besides"),
        # Named like ours: KubeVirt de-duplicates sockets by name, so one of them is skipped.
        ([OURS, {**OURS, "image": "registry.example/lookalike:1"}], "(image 'registry.example"),
        ([OURS, OURS], "1 hook sidecar entry (image 'kubevirt-cca:0.1.0') besides"),
        ([OURS, {"args": ["x"], "configMap": {"name": "script"}}], "(configMap 'script')"),
        ("[{", "it cannot be read (is not valid JSON"),
    ],
    ids=["after", "before", "alone", "lookalike", "twice", "configmap", "unreadable"],
)
def test_a_cca_vmi_with_another_sidecar_is_refused_by_the_sidecar(entries: Any, named: str) -> None:
    with pytest.raises(HookError) as refused:
        on_define_domain(DOMAIN, with_sidecars(entries), SETTINGS)
    message = str(refused.value)
    assert message.startswith(
        "kubevirt-cca hook: refusing to define the domain of VMI ns/v: it asks for an Arm CCA "
        f"Realm, but {HOOK_SIDECARS_ANNOTATION}: "
    )
    assert named in message
    assert "a CCA VMI runs no hook sidecar but kubevirt-cca's" in message
    assert message.endswith("Remove the other entries and recreate the VMI (see docs/security.md)")


def test_the_plugins_path_keeps_the_owners_sidecars() -> None:
    """Plugin mode: KubeVirt calls the plugin after every hook sidecar, so the owner's own
    sidecars cannot undo the Realm; they are not refused there."""
    settings = Settings(dialect=Dialect.QEMU_COMMANDLINE)
    call = MutateCall(
        domain_type="libvirt", domain=DOMAIN, vmi=with_sidecars([STRIP]), invocation_context="Boot"
    )
    assert mutate_domain(call, settings).realm


def test_a_plain_vmi_may_run_any_sidecar() -> None:
    plain = vmi({"app": "web"}, {HOOK_SIDECARS_ANNOTATION: json.dumps([STRIP, STRIP])})
    assert define_domain(DOMAIN, plain, SETTINGS).domain_xml is DOMAIN
