"""The hook over its real unix socket, driven like virt-launcher drives it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from lxml import etree

from kubevirt_cca.adapters.hook import HookCallbacks, UnixSocketServer
from kubevirt_cca.constants import (
    DEFAULT_CCA_FIRMWARE,
    HOOK_NAME,
    HOOK_SOCKET_NAME,
    LAUNCH_SECURITY_ANNOTATION,
    QEMU_NAMESPACE,
)
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.hook import DefinedDomain, on_define_domain
from kubevirt_cca.errors import HookError
from kubevirt_cca.hookproto import (
    api_info_pb2,
    api_info_pb2_grpc,
    api_v1alpha2_pb2,
    api_v1alpha2_pb2_grpc,
)
from tests.conftest import DATA
from tests.core.qemu_cases import (
    REFUSED_ARGUMENTS,
    REFUSED_ELEMENTS,
    with_commandlines,
    with_element,
)
from tests.core.rewrite_support import untouched_view
from tests.hook.conftest import StartHook
from tests.hook.launcher import NEWEST_FIRST, Launcher
from tests.hook.support import (
    ARM64_MINIMAL,
    FULL_PARAMETERS,
    RPV,
    as_json,
    cca_vmi,
    domain,
    plain_vmi,
)
from tests.narrow import attributes, details, find, xpath_elements

pytestmark = pytest.mark.shared
ARM64 = "kubevirt-arm64.xml"
VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3")
Q = f"{{{QEMU_NAMESPACE}}}"


def launcher_knowing(hooks_dir: Path, newest: str) -> Launcher:
    """A virt-launcher whose newest known callback version is ``newest``."""
    return Launcher(hooks_dir, NEWEST_FIRST[NEWEST_FIRST.index(newest) :])


# --- Info --------------------------------------------------------------------------------------


def test_info_names_the_hook_its_versions_and_hook_points(
    start_hook: StartHook, hooks_dir: Path
) -> None:
    server = start_hook()
    assert server.path == hooks_dir / "hook-sidecar-0" / HOOK_SOCKET_NAME
    with grpc.insecure_channel(f"unix:{server.path}") as channel:
        info = api_info_pb2_grpc.InfoStub(channel).Info(api_info_pb2.InfoParams(), timeout=5)
    assert info.name == HOOK_NAME
    assert list(info.versions) == ["v1alpha1", "v1alpha2", "v1alpha3"]
    # PreCloudInitIso is not implemented, so it is not advertised.
    assert [(p.name, p.priority) for p in info.hookPoints] == [
        ("OnDefineDomain", 0),
        ("Shutdown", 0),
    ]


@pytest.mark.parametrize("newest", VERSIONS)
def test_launcher_picks_the_newest_common_version(
    start_hook: StartHook, hooks_dir: Path, newest: str
) -> None:
    start_hook()
    [sidecar] = launcher_knowing(hooks_dir, newest).collect()
    assert sidecar.version == newest
    assert sidecar.name == HOOK_NAME


def test_pre_cloud_init_iso_is_unimplemented(start_hook: StartHook) -> None:
    server = start_hook()
    with grpc.insecure_channel(f"unix:{server.path}") as channel:
        stub = api_v1alpha2_pb2_grpc.CallbacksStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.PreCloudInitIso(api_v1alpha2_pb2.PreCloudInitIsoParams(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- a CCA VMI becomes a Realm -----------------------------------------------------------------


def check_realm(source: bytes, answer: bytes, dialect: Dialect) -> None:
    """What a Realm domain must have, and that nothing else changed."""
    out = etree.fromstring(answer)
    loader = out.find("os/loader")
    assert loader is not None
    assert (loader.get("type"), loader.get("readonly"), loader.text) == (
        "rom",
        "yes",
        DEFAULT_CCA_FIRMWARE,
    )
    assert out.find("os/nvram") is None
    interfaces = out.findall("devices/interface")
    assert interfaces
    for interface in interfaces:
        assert [dict(r.attrib) for r in interface.findall("rom")] == [{"enabled": "no"}]
    virtio = [
        *xpath_elements(out, "devices/disk[target/@bus='virtio']"),
        *xpath_elements(out, "devices/interface[starts-with(model/@type, 'virtio')]"),
        *xpath_elements(out, "devices/controller[@type='virtio-serial']"),
        *xpath_elements(out, "devices/rng[starts-with(@model, 'virtio')]"),
        *xpath_elements(out, "devices/input[@bus='virtio']"),
        *xpath_elements(out, "devices/video[model/@type='virtio']"),
    ]
    assert len(virtio) == 18  # 13 disks, 1 NIC, 1 serial controller, rng, tablet, video
    for device in virtio:
        assert find(device, "driver").get("iommu") == "on", etree.tostring(device)
    assert [dict(b.attrib) for b in out.findall("devices/memballoon")] == [{"model": "none"}]
    assert find(out, "features/gic").get("version") == "3"
    assert find(out, "cpu").get("mode") == "host-passthrough"
    launch_security = out.findall("launchSecurity")
    commandline = [a.get("value") for a in out.iterfind(f"{Q}commandline/{Q}arg")]
    if dialect is Dialect.VEP:
        [element] = launch_security
        assert attributes(element) == {"type": "cca", "measurement-log": "yes"}
        assert [(c.tag, c.text) for c in element] == [
            ("measurement-algo", "sha256"),
            ("personalization-value", RPV),
        ]
        assert commandline == []
    elif dialect is Dialect.OPENEULER:
        [element] = launch_security
        assert attributes(element) == {"type": "cca"}
        assert [(c.tag, c.text, dict(c.attrib)) for c in element] == [
            ("measurement-algo", "sha256", {}),
            ("personalization-value", RPV, {}),
            ("measurement-log", None, {"state": "on"}),
        ]
        assert commandline == []
    else:
        assert launch_security == []
        assert commandline == [
            "-object",
            f"rme-guest,id=rme0,measurement-algorithm=sha256,personalization-value={RPV},"
            "measurement-log=on",
            "-machine",
            "confidential-guest-support=rme0",
        ]
    assert untouched_view(answer.decode()) == untouched_view(source.decode())


@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
@pytest.mark.parametrize("newest", VERSIONS)
def test_cca_vmi_gets_a_realm_domain(
    start_hook: StartHook, hooks_dir: Path, newest: str, dialect: Dialect
) -> None:
    start_hook(Settings(dialect=dialect))
    launcher = launcher_knowing(hooks_dir, newest)
    [sidecar] = launcher.collect()
    assert sidecar.version == newest
    source = domain(ARM64)
    answer = launcher.on_define_domain(source, cca_vmi(FULL_PARAMETERS))
    check_realm(source, answer, dialect)
    # Exactly the core rewrite's golden output for the same parameters.
    golden = DATA / "golden" / f"shared-kubevirt-arm64.{dialect.value}.xml"
    assert answer == golden.read_bytes()


def test_settings_from_flags_reach_the_domain(start_hook: StartHook, launcher: Launcher) -> None:
    start_hook(Settings(firmware="/opt/edk2/cca.fd", virtio_iommu=False))
    launcher.collect()
    out = etree.fromstring(launcher.on_define_domain(domain(ARM64), cca_vmi()))
    assert find(out, "os/loader").text == "/opt/edk2/cca.fd"
    assert out.xpath("devices//driver[@iommu]") == []
    [element] = out.findall("launchSecurity")
    assert attributes(element) == {"type": "cca"} and len(element) == 0  # label only: no params


def test_vmi_with_type_meta_is_read_too(start_hook: StartHook, launcher: Launcher) -> None:
    start_hook()
    launcher.collect()
    answer = launcher.on_define_domain(domain(ARM64), cca_vmi(with_kind=True))
    assert etree.fromstring(answer).find("launchSecurity") is not None


# --- a plain VMI is left alone -----------------------------------------------------------------


@pytest.mark.parametrize("newest", VERSIONS)
@pytest.mark.parametrize("name", ["kubevirt-arm64.xml", "kubevirt-x86_64.xml"])
def test_plain_vmi_domain_comes_back_byte_for_byte(
    start_hook: StartHook, hooks_dir: Path, newest: str, name: str
) -> None:
    start_hook()
    launcher = launcher_knowing(hooks_dir, newest)
    launcher.collect()
    source = domain(name)
    assert launcher.on_define_domain(source, plain_vmi()) == source


def test_plain_vmi_with_a_domain_it_cannot_read_is_not_its_business(
    start_hook: StartHook, launcher: Launcher
) -> None:
    start_hook()
    launcher.collect()
    assert launcher.on_define_domain(b"<domain", plain_vmi()) == b"<domain"


# --- fail closed -------------------------------------------------------------------------------


def _sev_domain() -> bytes:
    root = etree.fromstring(domain(ARM64))
    etree.SubElement(root, "launchSecurity", type="sev")
    return etree.tostring(root)


def _vmi_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    vmi = cca_vmi()
    node = vmi
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return vmi


def _parameters_without_label() -> dict[str, Any]:
    vmi = plain_vmi()
    vmi["metadata"]["annotations"] = {LAUNCH_SECURITY_ANNOTATION: '{"measurementLog": true}'}
    return vmi


def _stripped_label() -> dict[str, Any]:
    """A VMI as admission left it (our hook entry), with the label removed afterwards."""
    vmi = plain_vmi()
    vmi["metadata"]["annotations"] = {
        "hooks.kubevirt.io/hookSidecars": json.dumps(
            [{"image": "kubevirt-cca:0.1.0", "args": ["hook", "--dialect", "vep"]}]
        )
    }
    return vmi


def _stripped_label_resolved() -> dict[str, Any]:
    vmi = plain_vmi()
    vmi["metadata"]["annotations"] = {"cca.kubevirt.io/resolved": "{}"}
    return vmi


INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ANNOTATION_PATH = f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]"
FAIL_CLOSED: dict[str, tuple[Any, Any, grpc.StatusCode, tuple[str, ...]]] = {
    # name: (domain, VMI, status, phrases the message must contain)
    "x86_64-domain": (
        lambda: domain("kubevirt-x86_64.xml"),
        cca_vmi,
        PRECONDITION,
        ("the domain is for x86_64", "needs an aarch64 domain"),
    ),
    # issue 21: the accelerator of the domain itself
    "domain-for-emulation": (
        lambda: ARM64_MINIMAL.replace(b"<domain type='kvm'>", b"<domain type='qemu'>", 1),
        cca_vmi,
        PRECONDITION,
        ("the domain is of type 'qemu'", "a CCA Realm runs only under KVM"),
    ),
    "domain-has-other-launch-security": (
        _sev_domain,
        cca_vmi,
        PRECONDITION,
        ("already has <launchSecurity type='sev'>",),
    ),
    "vmi-has-other-launch-security": (
        lambda: domain(ARM64),
        lambda: _vmi_with(("spec", "domain", "launchSecurity"), {"sev": {}}),
        INVALID,
        ("spec.domain.launchSecurity.sev", "cannot also use sev launch security"),
    ),
    "unknown-algorithm": (
        lambda: domain(ARM64),
        lambda: cca_vmi({"measurementAlgo": "md5"}),
        INVALID,
        (f"{ANNOTATION_PATH}.measurementAlgo", "unsupported value 'md5'"),
    ),
    "short-personalization-value": (
        lambda: domain(ARM64),
        lambda: cca_vmi({"personalizationValue": "AAAA"}),
        INVALID,
        (f"{ANNOTATION_PATH}.personalizationValue", "decodes to 3 bytes"),
    ),
    "unknown-parameter": (
        lambda: domain(ARM64),
        lambda: cca_vmi({"measurmentLog": True}),
        INVALID,
        (f"{ANNOTATION_PATH}.measurmentLog", "unknown key"),
    ),
    "parameters-not-json": (
        lambda: domain(ARM64),
        lambda: cca_vmi("{sha256"),
        INVALID,
        (ANNOTATION_PATH, "is not valid JSON"),
    ),
    "parameters-without-label": (
        lambda: domain(ARM64),
        _parameters_without_label,
        INVALID,
        ("CCA parameters need the label",),
    ),
    "label-not-true": (
        lambda: domain(ARM64),
        lambda: _vmi_with(("metadata", "labels"), {"cca.kubevirt.io/enabled": "yes"}),
        INVALID,
        ('must be "true" to ask for a Realm',),
    ),
    "domain-not-xml": (
        lambda: b"<domain type='kvm'><name>x</name>",
        cca_vmi,
        PRECONDITION,
        ("domain XML is not well-formed",),
    ),
    "not-a-domain": (
        lambda: b"<network/>",
        cca_vmi,
        PRECONDITION,
        ("the root element is <network>, expected <domain>",),
    ),
    "vmi-not-json": (
        lambda: domain(ARM64),
        lambda: b'{"metadata": ',
        INVALID,
        ("cannot read the VMI", "not valid JSON"),
    ),
    "vmi-empty": (
        lambda: domain(ARM64),
        lambda: b"",
        INVALID,
        ("cannot read the VMI",),
    ),
    "vmi-not-an-object": (
        lambda: domain(ARM64),
        lambda: b"[]",
        INVALID,
        ("cannot read the VMI", "expected a JSON object"),
    ),
    "vmi-not-utf8": (
        lambda: domain(ARM64),
        lambda: b'{"a": "\xff"}',
        INVALID,
        ("cannot read the VMI",),
    ),
    # issue 13: DTDs and entities, and a VMI whose label was stripped after admission
    "domain-with-doctype-and-entities": (
        lambda: (
            b'<!DOCTYPE domain [<!ENTITY x "kvm">]>'
            + domain(ARM64).replace(b"<name>", b"<name>&x;", 1)
        ),
        cca_vmi,
        PRECONDITION,
        ("domain XML has a DOCTYPE", "kubevirt-cca refuses it rather than pass it on"),
    ),
    "domain-with-undefined-entity": (
        lambda: domain(ARM64).replace(b"<name>", b"<name>&x;", 1),
        cca_vmi,
        PRECONDITION,
        ("domain XML contains an entity reference that is not defined", "Entity 'x' not defined"),
    ),
    "label-stripped-hook-entry-kept": (
        lambda: domain(ARM64),
        _stripped_label,
        INVALID,
        (
            "carries kubevirt-cca's hook entry in hooks.kubevirt.io/hookSidecars but not the "
            "label cca.kubevirt.io/enabled",
            "removed after admission",
        ),
    ),
    "label-stripped-resolved-kept": (
        lambda: domain(ARM64),
        _stripped_label_resolved,
        INVALID,
        ("metadata.annotations[cca.kubevirt.io/resolved]", "on CCA VMIs only"),
    ),
    # issue 21 item 7: numbers JSON cannot carry (Python's int/str limit is 4,300 digits)
    "vmi-long-integer": (
        lambda: domain(ARM64),
        lambda: as_json(cca_vmi()).replace(
            b'"spec": {', b'"spec": {"n": ' + b"9" * 5000 + b", ", 1
        ),
        INVALID,
        ("cannot read the VMI", "spec.n: an integer of 5000 digits is too long to read"),
    ),
    "vmi-nan": (
        lambda: domain(ARM64),
        lambda: as_json(cca_vmi()).replace(b'"spec": {', b'"spec": {"n": [NaN], ', 1),
        INVALID,
        ("cannot read the VMI", "spec.n[0]: NaN is not a number JSON can hold"),
    ),
    "parameters-long-integer": (
        lambda: domain(ARM64),
        lambda: cca_vmi('{"measurementLog": ' + "1" * 4301 + "}"),
        INVALID,
        (f"{ANNOTATION_PATH}.measurementLog: an integer of 4301 digits is too long to read",),
    ),
    "vmi-of-another-kind": (
        lambda: domain(ARM64),
        lambda: as_json(cca_vmi() | {"kind": "VirtualMachine"}),
        INVALID,
        ("expected kind VirtualMachineInstance, got 'VirtualMachine'",),
    ),
    # issue 21 item 11: native launchSecurity.cca pruned by the API server to {}
    "launch-security-pruned-to-empty": (
        lambda: domain(ARM64),
        lambda: _vmi_with(("spec", "domain", "launchSecurity"), {}),
        INVALID,
        (
            "spec.domain.launchSecurity: is empty: the API server dropped cca",
            "the Realm's parameters are gone",
            "the annotation cca.kubevirt.io/launch-security",
        ),
    ),
}


@pytest.mark.parametrize("case", list(FAIL_CLOSED))
def test_fail_closed(
    start_hook: StartHook, launcher: Launcher, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_domain, make_vmi, code, phrases = FAIL_CLOSED[case]
    start_hook()
    launcher.collect()
    caplog.set_level("INFO", logger="kubevirt_cca")
    with pytest.raises(grpc.RpcError) as caught:
        launcher.on_define_domain(make_domain(), make_vmi())
    # A refusal is one log line, never a traceback (issue 21 item 7: it was 30 lines).
    assert not [r for r in caplog.records if r.exc_info], "a refusal logged a traceback"
    assert caught.value.code() == code
    message = details(caught.value)
    assert message.startswith("kubevirt-cca hook: refusing to define the domain")
    assert "not started as a plain VM" in message
    for phrase in phrases:
        assert phrase in message


@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
def test_a_parameter_the_vmi_was_not_scheduled_for_is_refused(
    start_hook: StartHook, launcher: Launcher, dialect: Dialect
) -> None:
    """Scheduled only on kubevirt.io/cca: nothing said this node honours the parameters."""
    start_hook(Settings(dialect=dialect))
    launcher.collect()
    vmi = cca_vmi(FULL_PARAMETERS, node_selector={"kubevirt.io/cca": "true"})
    with pytest.raises(grpc.RpcError) as caught:
        launcher.on_define_domain(domain(ARM64), vmi)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = details(caught.value)
    assert message.startswith(
        "kubevirt-cca hook: refusing to define the domain of VMI "
        "tenant-a/vmi-arm: it asks for measurementAlgo"
    )
    assert f"with the {dialect.value} dialect; the VM is not started as a plain VM" in message
    # The label alone needs nothing more than kubevirt.io/cca.
    answer = launcher.on_define_domain(
        domain(ARM64), cca_vmi(node_selector={"kubevirt.io/cca": "true"})
    )
    assert b"rme" in answer or b"launchSecurity" in answer


# One argument (or element) of each class core/domain/qemuargs.py refuses
# (tests/core/qemu_cases.py).
FOREIGN_QEMU = ("machine-cgs", "accel-tcg", "cpu-max", "bios", "global-iommu-off", "readconfig")


@pytest.mark.parametrize(
    ("case", "dialect"),
    [(case, dialect) for case in (*FOREIGN_QEMU, "env", "override") for dialect in Dialect],
    ids=lambda value: value.value if isinstance(value, Dialect) else value,
)
def test_foreign_qemu_arguments_fail_the_call(
    start_hook: StartHook, launcher: Launcher, case: str, dialect: Dialect
) -> None:
    """issue 21: a domain an earlier sidecar gave a foreign QEMU argument never becomes a VM."""
    if case in REFUSED_ELEMENTS:
        element, named = REFUSED_ELEMENTS[case]
        source = with_element(ARM64_MINIMAL, element)
    else:
        values, named = REFUSED_ARGUMENTS[case]
        source = with_commandlines(ARM64_MINIMAL, values)
    start_hook(Settings(dialect=dialect))
    launcher.collect()
    with pytest.raises(grpc.RpcError) as caught:
        launcher.on_define_domain(source.encode(), cca_vmi())
    assert caught.value.code() == PRECONDITION
    message = details(caught.value)
    assert message.startswith(
        "kubevirt-cca hook: refusing to define the domain of VMI tenant-a/vmi-arm: the VMI asks "
        "for an Arm CCA Realm, but its domain cannot be made one: the domain carries what "
        "kubevirt-cca does not pass to a Realm in libvirt's QEMU namespace: "
    )
    assert named in message and "not started as a plain VM" in message


@pytest.mark.parametrize("newest", VERSIONS)
def test_every_version_fails_closed(start_hook: StartHook, hooks_dir: Path, newest: str) -> None:
    start_hook()
    launcher = launcher_knowing(hooks_dir, newest)
    launcher.collect()
    with pytest.raises(grpc.RpcError) as caught:
        launcher.on_define_domain(domain("kubevirt-x86_64.xml"), cca_vmi())
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "tenant-a/vmi-arm" in details(caught.value)


def test_refusals_are_logged_with_the_vmi(
    start_hook: StartHook, launcher: Launcher, caplog: pytest.LogCaptureFixture
) -> None:
    start_hook(Settings(dialect=Dialect.OPENEULER))
    launcher.collect()
    caplog.set_level("INFO", logger="kubevirt_cca")
    launcher.on_define_domain(domain(ARM64), cca_vmi())
    launcher.on_define_domain(domain(ARM64), plain_vmi(name="plain"))
    with pytest.raises(grpc.RpcError):
        launcher.on_define_domain(domain(ARM64), cca_vmi({"measurementAlgo": "md5"}))
    lines = [r.getMessage() for r in caplog.records if "call=OnDefineDomain" in r.getMessage()]
    assert len(lines) == 3
    for line, outcome in zip(lines, ("rewritten", "unchanged", "refused"), strict=True):
        assert "version=v1alpha3" in line and "dialect=openeuler" in line
        assert f"outcome={outcome}" in line and "duration_ms=" in line
    assert "vmi=tenant-a/vmi-arm" in lines[0] and "vmi=tenant-a/plain" in lines[1]
    assert "code=INVALID_ARGUMENT" in lines[2] and "md5" in lines[2]


def test_vmi_names_cannot_forge_log_lines(
    start_hook: StartHook, launcher: Launcher, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: a VMI name that is no Kubernetes name is escaped in the log line."""
    start_hook()
    launcher.collect()
    caplog.set_level("INFO", logger="kubevirt_cca")
    forged = "x\ncall=OnDefineDomain outcome=rewritten"
    launcher.on_define_domain(domain(ARM64), plain_vmi(name=forged))
    lines = [r.getMessage() for r in caplog.records if "call=OnDefineDomain" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert 'vmi="tenant-a/x\\ncall=OnDefineDomain outcome=rewritten"' in lines[0]


# --- concurrency -------------------------------------------------------------------------------


def test_concurrent_calls_are_independent(start_hook: StartHook, launcher: Launcher) -> None:
    settings = Settings(dialect=Dialect.QEMU_COMMANDLINE)
    start_hook(settings, max_workers=4)
    launcher.collect()
    source = domain(ARM64)
    vmis = [
        cca_vmi({"measurementAlgo": "sha256"}, name="a"),
        cca_vmi({"measurementAlgo": "sha512", "measurementLog": True}, name="b"),
        plain_vmi(name="c"),
        cca_vmi({"measurementAlgo": "md5"}, name="d"),
    ]
    expected: list[bytes | None] = []
    for vmi in vmis:
        try:
            expected.append(on_define_domain(source, as_json(vmi), settings))
        except HookError:
            expected.append(None)
    assert expected[3] is None and len(set(expected[:3])) == 3
    mismatches: list[str] = []

    def worker(offset: int) -> None:
        for i in range(12):
            index = (offset + i) % len(vmis)
            try:
                answer: bytes | None = launcher.on_define_domain(source, vmis[index])
            except grpc.RpcError as exc:
                answer = None
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    mismatches.append(f"{index}: {exc.code()}")
            if answer != expected[index]:
                mismatches.append(f"{index}: wrong answer")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert mismatches == []


def test_vmi_json_from_file_is_sent_as_is(start_hook: StartHook, launcher: Launcher) -> None:
    """The VMI travels as JSON bytes; keys order and whitespace do not matter."""
    start_hook()
    launcher.collect()
    text = json.dumps(cca_vmi({"measurementAlgo": "sha512"}), indent=4, sort_keys=True)
    out = etree.fromstring(launcher.on_define_domain(domain(ARM64), text.encode()))
    assert out.findtext("launchSecurity/measurement-algo") == "sha512"


def test_an_unforeseen_error_fails_closed_as_internal(
    hooks_dir: Path, launcher: Launcher, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug behind the transport still yields no domain, never the unchanged one."""

    def broken(_domain: bytes, _vmi: bytes, _settings: Settings) -> DefinedDomain:
        raise KeyError("a bug")

    stop = threading.Event()
    callbacks = HookCallbacks(Settings(), on_shutdown=stop.set, decide=broken)
    server = UnixSocketServer(
        hooks_dir / "hook-sidecar-0" / HOOK_SOCKET_NAME, callbacks.handlers(), stop_event=stop
    )
    server.start()
    try:
        launcher.collect()
        with pytest.raises(grpc.RpcError) as caught:
            launcher.on_define_domain(ARM64_MINIMAL, cca_vmi())
    finally:
        server.stop(grace=1.0)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == (
        "kubevirt-cca hook: internal error while defining the domain; the VM is not started "
        "(see the hook sidecar container's log)"
    )
    [record] = [r for r in caplog.records if "outcome=error" in r.getMessage()]
    assert record.exc_info is not None and "a bug" in str(record.exc_info[1])
