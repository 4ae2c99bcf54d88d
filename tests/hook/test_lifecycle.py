"""The sidecar's lifecycle: its socket file, stale sockets, Shutdown, SIGTERM, the command."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from lxml import etree

from kubevirt_cca.adapters.hook import hook_server, serve_until_stopped
from kubevirt_cca.cli import build_parser, main
from kubevirt_cca.cli import hook as hook_command
from kubevirt_cca.cli.common import settings_from_args
from kubevirt_cca.constants import HOOK_SOCKET_DIR, HOOK_SOCKET_NAME, QEMU_NAMESPACE
from kubevirt_cca.core.admission.sidecar_entry import hook_entry
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.errors import SettingsError
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2 as plugin_pb2
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2_grpc as plugin_grpc
from tests.hook.conftest import StartHook
from tests.hook.launcher import Launcher
from tests.hook.support import ARM64_MINIMAL
from tests.narrow import find

SIDECAR = "hook-sidecar-0"
PLAIN_VMI = {"metadata": {"namespace": "ns", "name": "plain"}}
CCA_VMI = {
    "metadata": {"namespace": "ns", "name": "realm", "labels": {"cca.kubevirt.io/enabled": "true"}}
}


def socket_path(hooks_dir: Path) -> Path:
    return hooks_dir / SIDECAR / HOOK_SOCKET_NAME


def make_stale_socket(path: Path) -> None:
    """A socket file nobody listens on: what a killed server leaves behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.is_socket()


# --- the socket file ---------------------------------------------------------------------------


def test_stale_socket_at_startup_is_replaced(
    hooks_dir: Path, start_hook: StartHook, launcher: Launcher, caplog: pytest.LogCaptureFixture
) -> None:
    path = socket_path(hooks_dir)
    make_stale_socket(path)
    caplog.set_level("INFO", logger="kubevirt_cca")
    start_hook()
    assert f"replacing stale socket={path}" in caplog.messages
    launcher.collect()
    assert launcher.on_define_domain(ARM64_MINIMAL, PLAIN_VMI) == ARM64_MINIMAL


def test_a_file_that_is_not_a_socket_is_left_alone(hooks_dir: Path) -> None:
    path = socket_path(hooks_dir)
    path.parent.mkdir()
    path.write_text("not a socket")
    with pytest.raises(SettingsError, match="exists and is not a socket; refusing to replace"):
        hook_server(path.parent, Settings()).start()
    assert path.read_text() == "not a socket"


def test_a_live_socket_is_not_taken_over(
    hooks_dir: Path, start_hook: StartHook, launcher: Launcher
) -> None:
    start_hook()
    with pytest.raises(SettingsError, match="another server is already listening"):
        hook_server(socket_path(hooks_dir).parent, Settings()).start()
    launcher.collect()
    assert launcher.on_define_domain(ARM64_MINIMAL, PLAIN_VMI) == ARM64_MINIMAL


def test_socket_path_too_long_for_the_kernel_is_refused(hooks_dir: Path) -> None:
    with pytest.raises(SettingsError, match="at most 107: choose a shorter --socket-dir"):
        hook_server(hooks_dir / ("d" * 120), Settings()).start()


def test_stop_removes_the_socket(hooks_dir: Path, start_hook: StartHook) -> None:
    server = start_hook()
    assert server.path.is_socket()
    server.stop(grace=1.0)
    assert not server.path.exists()
    server.stop(grace=1.0)  # stopping twice is harmless


def test_shutdown_asks_the_server_to_stop(start_hook: StartHook, launcher: Launcher) -> None:
    server = start_hook()
    launcher.collect()
    assert not server.stop_event.is_set()
    launcher.shutdown()
    assert server.stop_event.wait(5)


def test_serve_until_stopped_returns_after_shutdown_and_cleans_up(
    hooks_dir: Path, launcher: Launcher
) -> None:
    server = hook_server(hooks_dir / SIDECAR, Settings())
    errors: list[BaseException] = []

    def virt_launcher() -> None:
        try:
            launcher.collect(timeout=20)
            assert launcher.on_define_domain(ARM64_MINIMAL, PLAIN_VMI) == ARM64_MINIMAL
            launcher.shutdown()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
            server.request_stop()

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=virt_launcher)
    thread.start()
    serve_until_stopped([server], grace=1.0)  # returns once Shutdown was called
    thread.join(10)
    assert errors == []
    assert not server.path.exists()
    assert signal.getsignal(signal.SIGTERM) == before  # its signal handlers are undone


# --- the command, as the sidecar container runs it ---------------------------------------------


@pytest.fixture
def sidecar_process(hooks_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """``kubevirt-cca hook`` in its own process, as in the sidecar container."""
    command = [
        sys.executable,
        "-c",
        "import sys; from kubevirt_cca.cli import main; sys.exit(main())",
        "hook",
        "--socket-dir",
        str(hooks_dir / SIDECAR),
        "--dialect",
        "openeuler",
        "--firmware",
        "/opt/cca/AAVMF_CODE.cca.fd",
        "--virtio-iommu",
        "on",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def wait_for_socket(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.is_socket():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_sidecar_process_serves_and_sigterm_removes_the_socket(
    hooks_dir: Path, sidecar_process: subprocess.Popen[str], launcher: Launcher
) -> None:
    path = socket_path(hooks_dir)
    wait_for_socket(path, sidecar_process)
    launcher.collect()
    answer = etree.fromstring(launcher.on_define_domain(ARM64_MINIMAL, CCA_VMI))
    assert find(answer, "os/loader").text == "/opt/cca/AAVMF_CODE.cca.fd"
    assert find(answer, "launchSecurity").get("type") == "cca"
    assert find(answer, "devices/disk/driver").get("iommu") == "on"
    assert launcher.on_define_domain(ARM64_MINIMAL, PLAIN_VMI) == ARM64_MINIMAL

    sidecar_process.send_signal(signal.SIGTERM)
    _, stderr = sidecar_process.communicate(timeout=20)
    assert sidecar_process.returncode == 0, stderr
    assert not path.exists()
    assert "stopping signal=SIGTERM" in stderr
    assert (
        "call=OnDefineDomain version=v1alpha3 vmi=ns/realm dialect=openeuler "
        "outcome=rewritten duration_ms="
    ) in stderr
    assert (
        "call=OnDefineDomain version=v1alpha3 vmi=ns/plain dialect=openeuler "
        "outcome=unchanged duration_ms="
    ) in stderr
    assert "Traceback" not in stderr


def test_sidecar_process_exits_on_shutdown(
    hooks_dir: Path, sidecar_process: subprocess.Popen[str], launcher: Launcher
) -> None:
    path = socket_path(hooks_dir)
    wait_for_socket(path, sidecar_process)
    launcher.collect()
    launcher.shutdown()
    _, stderr = sidecar_process.communicate(timeout=20)
    assert sidecar_process.returncode == 0, stderr
    assert not path.exists()
    assert "call=Shutdown version=v1alpha3 outcome=ok" in stderr


def test_sidecar_process_replaces_a_stale_socket(
    hooks_dir: Path, sidecar_process: subprocess.Popen[str], launcher: Launcher
) -> None:
    # The fixture started the process already; kill it so it leaves its socket behind, as an
    # OOM kill would, then start a second one on the same directory.
    path = socket_path(hooks_dir)
    wait_for_socket(path, sidecar_process)
    sidecar_process.kill()
    sidecar_process.communicate(timeout=10)
    assert path.is_socket(), "a killed server leaves its socket file"
    second = subprocess.Popen(
        sidecar_process.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        launcher_ready = False
        while not launcher_ready:
            assert second.poll() is None, second.communicate()[1]
            assert time.monotonic() < deadline
            try:
                launcher.collect(timeout=1)
                launcher_ready = True
            except TimeoutError:
                continue
        assert launcher.on_define_domain(ARM64_MINIMAL, PLAIN_VMI) == ARM64_MINIMAL
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=20)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate(timeout=10)
    assert second.returncode == 0, stderr
    assert "replacing stale socket=" in stderr
    assert not path.exists()


# --- command-line wiring -----------------------------------------------------------------------


def test_hook_command_defaults() -> None:
    args = build_parser("hook").parse_args(["hook"])
    assert args.socket_dir == HOOK_SOCKET_DIR == "/var/run/kubevirt-hooks"
    assert (args.dialect, args.firmware, args.virtio_iommu) == (None, None, None)


def test_bad_settings_stop_the_command_before_it_listens(
    hooks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["hook", "--socket-dir", str(hooks_dir / SIDECAR), "--firmware", "cca.fd"])
    assert code == 2  # a usage error (docs/cli.md)
    assert "kubevirt-cca hook: error: firmware: expected an absolute" in capsys.readouterr().err
    assert not (hooks_dir / SIDECAR).exists()


def test_unusable_socket_path_is_one_clear_line(
    hooks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = socket_path(hooks_dir)
    path.parent.mkdir()
    path.write_text("")
    try:
        code = main(["hook", "--socket-dir", str(path.parent)])
    finally:
        logging.getLogger("kubevirt_cca").setLevel(logging.NOTSET)
    assert code == 1
    err = capsys.readouterr().err
    assert f"kubevirt-cca hook: error: {path} exists and is not a socket" in err
    assert os.path.isfile(path)


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(dialect=Dialect.QEMU_COMMANDLINE, firmware="/opt/cca/fw.fd", virtio_iommu=False),
    ],
    ids=["defaults", "all-set"],
)
def test_the_webhooks_sidecar_entry_starts_this_command(settings: Settings) -> None:
    """The admission webhook's hookSidecars entry is a valid command line with its settings."""
    entry = hook_entry(settings, image="registry.example/kubevirt-cca:1")
    args = build_parser(every=True).parse_args(entry["args"])
    assert args.command == "hook" and args.handler is hook_command.run
    assert args.socket_dir == HOOK_SOCKET_DIR
    assert settings_from_args(args) == settings


# --- the Plugins path (--plugin-socket) ---------------------------------------------------------


@pytest.mark.parametrize("dialect", ["vep", "openeuler"])
def test_plugin_socket_with_another_dialect_is_a_usage_error(
    hooks_dir: Path, capsys: pytest.CaptureFixture[str], dialect: str
) -> None:
    path = hooks_dir / "kubevirt-cca" / "kubevirt-cca.sock"
    code = main(["hook", "--plugin-socket", str(path), "--dialect", dialect])
    assert code == 2
    err = capsys.readouterr().err
    assert (
        f"kubevirt-cca hook: error: --dialect {dialect} cannot be used with --plugin-socket"
    ) in err
    assert "only the qemu-commandline dialect survives" in err
    assert not path.parent.exists()


def test_plugin_command_serves_mutate_domain_only_on_its_socket(hooks_dir: Path) -> None:
    """The real command in a child process: the plugin socket appears, the legacy one does not."""
    path = hooks_dir / "kubevirt-cca" / "kubevirt-cca.sock"
    legacy = hooks_dir / "legacy"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubevirt_cca",
            "hook",
            "--plugin-socket",
            str(path),
            "--socket-dir",
            str(legacy),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not path.is_socket():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "plugin socket did not appear"
            time.sleep(0.05)
        with grpc.insecure_channel(f"unix:{path}") as channel:
            answer = plugin_grpc.DomainHookServiceStub(channel).MutateDomain(
                plugin_pb2.MutateDomainRequest(
                    domain_type="libvirt",
                    domain=ARM64_MINIMAL,
                    vmi=json.dumps(CCA_VMI).encode(),
                    sidecar_context=plugin_pb2.SidecarContext(invocation_context="Boot"),
                ),
                timeout=20,
            )
        out = etree.fromstring(answer.domain)
        assert out.find("launchSecurity") is None  # forced qemu-commandline dialect
        args = [a.get("value") for a in out.iter(f"{{{QEMU_NAMESPACE}}}arg")]
        assert args == [
            "-object",
            "rme-guest,id=rme0",
            "-machine",
            "confidential-guest-support=rme0",
        ]
        assert not legacy.exists()
    finally:
        child.send_signal(signal.SIGTERM)
        _out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert not path.exists()
    assert "call=MutateDomain context=Boot domain_type=libvirt vmi=ns/realm" in err
