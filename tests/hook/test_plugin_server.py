"""The Plugins path's domain hook (VEP 190) over its real unix socket, called like virt-launcher.

The decision is the hook sidecar's, so the Realm checks and the fail-closed cases are the ones
``test_server`` uses; what is new here is the transport (``MutateDomain``, no handshake), the
domain type, the invocation context, the forced dialect, the socket's mode, idempotence over
three definitions and the qemu namespace written without a prefix.
"""

from __future__ import annotations

import os
import shutil
import socket as sockets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from lxml import etree

from kubevirt_cca.adapters.hook import DomainHookService, UnixSocketServer, plugin_server
from kubevirt_cca.constants import PLUGIN_NAME, PLUGIN_SOCKET, QEMU_NAMESPACE
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.hook import DefinedDomain
from kubevirt_cca.core.hook.mutate_domain import BOOT, MIGRATION_TARGET, MutateCall, mutate_domain
from kubevirt_cca.errors import HookError, SettingsError
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2 as plugin_pb2
from tests.conftest import DATA
from tests.hook.conftest import StartServer
from tests.hook.plugin_launcher import PluginCaller, unprefixed
from tests.hook.support import ARM64_MINIMAL, FULL_PARAMETERS, as_json, cca_vmi, domain, plain_vmi
from tests.hook.test_server import FAIL_CLOSED, check_realm
from tests.narrow import details, find

PLUGIN_SETTINGS = Settings(dialect=Dialect.QEMU_COMMANDLINE)
CONTEXTS = (BOOT, MIGRATION_TARGET)
DOMAINS = ("kubevirt-arm64.xml", "kubevirt-api-arm64.xml")
Q = f"{{{QEMU_NAMESPACE}}}"
GOLDEN = DATA / "golden" / "shared-kubevirt-arm64.qemu-commandline.xml"

StartPlugin = Callable[..., UnixSocketServer]


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    """The pod's /var/run/kubevirt-plugin/kubevirt-cca, short enough for a unix socket path."""
    path = Path(tempfile.mkdtemp(prefix="kcca-p-", dir="/tmp"))
    yield path / PLUGIN_NAME
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def socket_path(plugin_dir: Path) -> Path:
    return plugin_dir / Path(PLUGIN_SOCKET).name


@pytest.fixture
def start_plugin(socket_path: Path, start_server: StartServer) -> StartPlugin:
    def start(settings: Settings = PLUGIN_SETTINGS) -> UnixSocketServer:
        return start_server(plugin_server(socket_path, settings))

    return start


@pytest.fixture
def caller(socket_path: Path) -> PluginCaller:
    return PluginCaller(socket_path)


def commandline(answer: bytes) -> list[str | None]:
    return [a.get("value") for a in etree.fromstring(answer).iterfind(f"{Q}commandline/{Q}arg")]


# --- a Realm through MutateDomain ---------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("context", CONTEXTS)
def test_cca_vmi_gets_the_realm_domain(
    start_plugin: StartPlugin, caller: PluginCaller, context: str
) -> None:
    start_plugin()
    source = domain("kubevirt-arm64.xml")
    answer = caller.mutate_domain(source, cca_vmi(FULL_PARAMETERS), context=context)
    check_realm(source, answer, Dialect.QEMU_COMMANDLINE)
    assert answer == GOLDEN.read_bytes()  # the same bytes the legacy hook writes


@pytest.mark.shared
@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("prefix", ["prefixed", "unprefixed"])
@pytest.mark.parametrize("name", DOMAINS)
def test_three_definitions_per_boot_give_the_same_realm(
    start_plugin: StartPlugin,
    caller: PluginCaller,
    name: str,
    prefix: str,
    context: str,
) -> None:
    """virt-launcher may define the domain three times, each time from what it got back."""
    start_plugin()
    reserialise = unprefixed if prefix == "unprefixed" else (lambda xml: xml)
    source = reserialise(domain(name))
    vmi = cca_vmi(FULL_PARAMETERS)
    first = caller.mutate_domain(source, vmi, context=context)
    second = caller.mutate_domain(reserialise(first), vmi, context=context)
    third = caller.mutate_domain(reserialise(second), vmi, context=context)
    expected_args = [
        "-object",
        "rme-guest,id=rme0,measurement-algorithm=sha256,"
        f"personalization-value={FULL_PARAMETERS['personalizationValue']},measurement-log=on",
        "-machine",
        "confidential-guest-support=rme0",
    ]
    for answer in (first, second, third):
        assert commandline(answer) == expected_args  # one rme-guest object, never two
        out = etree.fromstring(answer)
        assert len(out.findall(f"{Q}commandline")) == 1
        assert out.findall("launchSecurity") == []
        assert find(out, "os/loader").get("type") == "rom"
        assert out.find("os/nvram") is None
    assert second == third
    if prefix == "prefixed":
        assert first == second


@pytest.mark.shared
def test_an_unprefixed_commandline_of_the_user_is_kept(
    start_plugin: StartPlugin,
    caller: PluginCaller,
) -> None:
    """Arguments the VM already had in a default-namespace block stay, ours are appended."""
    start_plugin()
    root = etree.fromstring(domain("kubevirt-arm64.xml"))
    # lxml-stubs allow no None (the default namespace) as an nsmap key; lxml does.
    block = etree.SubElement(root, f"{Q}commandline", nsmap={None: QEMU_NAMESPACE})  # type: ignore[dict-item]
    etree.SubElement(block, f"{Q}arg", value="-msg")
    etree.SubElement(block, f"{Q}arg", value="timestamp=on")
    source = etree.tostring(root)
    assert f'<commandline xmlns="{QEMU_NAMESPACE}">'.encode() in source
    answer = caller.mutate_domain(source, cca_vmi())
    assert commandline(answer) == [
        "-msg",
        "timestamp=on",
        "-object",
        "rme-guest,id=rme0",
        "-machine",
        "confidential-guest-support=rme0",
    ]
    assert caller.mutate_domain(answer, cca_vmi()) == answer


@pytest.mark.shared
@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", ["kubevirt-arm64.xml", "kubevirt-x86_64.xml"])
def test_plain_vmi_domain_comes_back_byte_for_byte(
    start_plugin: StartPlugin,
    caller: PluginCaller,
    name: str,
    context: str,
) -> None:
    start_plugin()
    source = domain(name)
    assert caller.mutate_domain(source, plain_vmi(), context=context) == source
    assert caller.mutate_domain(unprefixed(source), plain_vmi()) == unprefixed(source)


def test_plain_vmi_with_another_domain_type_is_left_alone(
    start_plugin: StartPlugin,
    caller: PluginCaller,
) -> None:
    start_plugin()
    assert caller.mutate_domain(b"{}", plain_vmi_minimal(), domain_type="json") == b"{}"


def plain_vmi_minimal() -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "plain"}}


# --- fail closed -------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("case", list(FAIL_CLOSED))
def test_fail_closed(start_plugin: StartPlugin, caller: PluginCaller, case: str) -> None:
    make_domain, make_vmi, code, phrases = FAIL_CLOSED[case]
    start_plugin()
    with pytest.raises(grpc.RpcError) as caught:
        caller.mutate_domain(make_domain(), make_vmi())
    assert caught.value.code() == code
    message = details(caught.value)
    assert "refusing to define the domain" in message
    assert "not started as a plain VM" in message
    for phrase in phrases:
        assert phrase in message


@pytest.mark.parametrize("domain_type", ["", "json", "LIBVIRT"])
def test_a_realm_in_another_domain_type_is_refused(
    start_plugin: StartPlugin,
    caller: PluginCaller,
    domain_type: str,
) -> None:
    start_plugin()
    vmi = {
        "metadata": {
            "namespace": "ns",
            "name": "realm",
            "labels": {"cca.kubevirt.io/enabled": "true"},
        }
    }
    with pytest.raises(grpc.RpcError) as caught:
        caller.mutate_domain(ARM64_MINIMAL, vmi, domain_type=domain_type)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    message = details(caught.value)
    assert f"virt-launcher sent a domain of type {domain_type!r}" in message
    assert "ns/realm" in message and "not started as a plain VM" in message


def test_an_invalid_request_in_another_domain_type_is_refused(
    start_plugin: StartPlugin,
    caller: PluginCaller,
) -> None:
    start_plugin()
    vmi = {
        "metadata": {
            "namespace": "ns",
            "name": "realm",
            "labels": {"cca.kubevirt.io/enabled": "yes"},
        }
    }
    with pytest.raises(grpc.RpcError) as caught:
        caller.mutate_domain(b"{}", vmi, domain_type="json")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'must be "true" to ask for a Realm' in details(caught.value)


def test_an_unforeseen_error_fails_closed_as_internal(
    socket_path: Path,
    caller: PluginCaller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one seam: the decision raising something no one foresaw gives no domain at all."""

    def explode(_call: MutateCall, _settings: Settings) -> DefinedDomain:
        raise ZeroDivisionError("boom")

    service = DomainHookService(PLUGIN_SETTINGS, decide=explode)
    server = UnixSocketServer(socket_path, service.handlers())
    server.start()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            caller.mutate_domain(ARM64_MINIMAL, cca_vmi_minimal())
    finally:
        server.stop(grace=1.0)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "the VM is not started" in details(caught.value)
    [record] = [r for r in caplog.records if "outcome=error" in r.getMessage()]
    assert "call=MutateDomain" in record.getMessage()
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def cca_vmi_minimal() -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "realm",
            "labels": {"cca.kubevirt.io/enabled": "true"},
        }
    }


# --- the forced dialect -------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [Dialect.VEP, Dialect.OPENEULER])
def test_another_dialect_cannot_be_served(dialect: Dialect, socket_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=f"dialect {dialect.value} cannot be served as a KubeVirt Plugin"
    ):
        plugin_server(socket_path, Settings(dialect=dialect))
    assert not socket_path.exists()


def test_the_pure_decision_rechecks_the_dialect() -> None:
    call = MutateCall(
        domain_type="libvirt",
        domain=ARM64_MINIMAL,
        vmi=as_json(cca_vmi_minimal()),
        invocation_context=BOOT,
    )
    with pytest.raises(HookError, match="refusing to define the domain: dialect vep") as caught:
        mutate_domain(call, Settings(dialect=Dialect.VEP))
    assert caught.value.vmi == "ns/realm"


# --- the socket --------------------------------------------------------------------------------


def test_socket_is_usable_by_the_qemu_user(start_plugin: StartPlugin, socket_path: Path) -> None:
    start_plugin()
    mode = stat.S_IMODE(socket_path.stat().st_mode)
    assert mode == 0o660
    assert stat.S_ISSOCK(socket_path.stat().st_mode)


def test_only_the_plugin_socket_is_created(start_plugin: StartPlugin, plugin_dir: Path) -> None:
    start_plugin()
    assert os.listdir(plugin_dir) == [Path(PLUGIN_SOCKET).name]
    # The legacy hook protocol is not served there: no Info, no Callbacks.
    with grpc.insecure_channel(f"unix:{plugin_dir / Path(PLUGIN_SOCKET).name}") as channel:
        info: grpc.UnaryUnaryMultiCallable[None, bytes] = channel.unary_unary(
            "/kubevirt.hooks.info.Info/Info",
            request_serializer=lambda _: b"",
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.RpcError) as caught:
            info(None, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_stop_removes_the_socket(start_plugin: StartPlugin, socket_path: Path) -> None:
    server = start_plugin()
    server.stop(grace=1.0)
    assert not socket_path.exists()


def test_request_message_round_trips_the_context() -> None:
    request = plugin_pb2.MutateDomainRequest(
        domain_type="libvirt",
        domain=b"<domain/>",
        vmi=b"{}",
        sidecar_context=plugin_pb2.SidecarContext(invocation_context=MIGRATION_TARGET),
    )
    parsed = plugin_pb2.MutateDomainRequest.FromString(request.SerializeToString())
    assert parsed.sidecar_context.invocation_context == MIGRATION_TARGET


def test_a_stale_plugin_socket_is_replaced_and_a_live_one_kept(
    start_plugin: StartPlugin,
    caller: PluginCaller,
    socket_path: Path,
) -> None:
    socket_path.parent.mkdir(parents=True)
    stale = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    start_plugin()
    assert caller.mutate_domain(ARM64_MINIMAL, plain_vmi_minimal()) == ARM64_MINIMAL
    with pytest.raises(SettingsError, match="another server is already listening"):
        plugin_server(socket_path, PLUGIN_SETTINGS).start()
    assert caller.mutate_domain(ARM64_MINIMAL, plain_vmi_minimal()) == ARM64_MINIMAL
