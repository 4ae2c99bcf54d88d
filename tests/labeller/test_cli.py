"""``kubevirt-cca labeller`` as a real process against the API emulator: flags, exit, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from kubevirt_cca.cli import main
from kubevirt_cca.constants import NODE_DETECTION_ANNOTATION
from kubevirt_cca.core.node.labels import is_owned_label
from tests.cli.run import kubevirt_cca
from tests.install.monitoring_rules import labeller_metrics, scraped_names, scraped_value
from tests.labeller.conftest import CAPABLE_LABELS, FOREIGN_LABELS, NODE, domcaps
from tests.labeller.emulator import ClusterAPI

ENTRY = "import sys; from kubevirt_cca.cli import main; sys.exit(main())"
LISTENING = re.compile(r"health endpoint listening on http://127\.0\.0\.1:(\d+)")
ALL_LABELS = CAPABLE_LABELS["aarch64-cca.xml"]


@dataclass
class Labeller:
    """A running ``kubevirt-cca labeller`` process and what it has said on standard error."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    port: asyncio.Future[int] = field(default_factory=asyncio.Future)
    _reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            found = LISTENING.search(line)
            if found and not self.port.done():
                self.port.set_result(int(found.group(1)))

    async def wait(self, timeout: float = 30.0) -> int:
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


async def start(*args: str, env: dict[str, str] | None = None) -> Labeller:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ENTRY,
        "--log-level",
        "INFO",
        "labeller",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else _env(),
    )
    labeller = Labeller(process)
    labeller._reader = asyncio.create_task(labeller._read())
    return labeller


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_NAME", "KUBECONFIG")}
    env.update(extra)
    return env


@pytest_asyncio.fixture
async def running() -> AsyncIterator[list[Labeller]]:
    """Processes a test started; any still running at the end are killed (by their own pid)."""
    started: list[Labeller] = []
    yield started
    for labeller in started:
        if labeller.process.returncode is None:
            labeller.process.kill()
            await labeller.process.wait()


def owned(node: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in node["metadata"].get("labels", {}).items() if is_owned_label(k)}


async def until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# --- One shot ----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.shared
async def test_once_labels_the_node_and_exits_zero(api: ClusterAPI, host: Path) -> None:
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={})

    labeller = await start(
        "--node-name",
        NODE,
        "--domcaps-file",
        str(domcaps("aarch64-cca.xml")),
        "--root",
        str(host),
        "--once",
        "--server",
        str(api.url),
    )

    assert await labeller.wait() == 0, labeller.stderr
    node = api.node(NODE)
    assert owned(node) == ALL_LABELS
    assert json.loads(node["metadata"]["annotations"][NODE_DETECTION_ANNOTATION])["capable"]
    assert "reconcile patched" in labeller.stderr


@pytest.mark.asyncio
@pytest.mark.shared
async def test_once_prints_one_line_saying_what_it_did(api: ClusterAPI, host: Path) -> None:
    """issue 23, item 7: the result on standard output, one line, counted from what was sent."""
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={})

    def once(xml: str) -> subprocess.CompletedProcess[str]:
        return kubevirt_cca(
            "labeller", "--once", "--node-name", NODE, "--domcaps-file", str(domcaps(xml)),
            "--root", str(host), "--server", str(api.url),
        )  # fmt: skip

    first = await asyncio.to_thread(once, "aarch64-cca.xml")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"node {NODE}: capable, {len(ALL_LABELS)} label(s) set, 0 removed, "
        "detection annotation updated\n"
    )
    again = await asyncio.to_thread(once, "aarch64-cca.xml")
    assert again.stdout == (
        f"node {NODE}: capable, 0 label(s) set, 0 removed, detection annotation unchanged\n"
    )
    gone = await asyncio.to_thread(once, "aarch64-no-cca.xml")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout == (
        f"node {NODE}: not capable, 0 label(s) set, {len(ALL_LABELS)} removed, "
        "detection annotation updated\n"
    )
    assert owned(api.node(NODE)) == {}


@pytest.mark.asyncio
@pytest.mark.shared
async def test_node_name_comes_from_the_environment(api: ClusterAPI, host: Path) -> None:
    api.add_node(NODE, labels={}, annotations={})

    labeller = await start(
        "--domcaps-file",
        str(domcaps("aarch64-no-cca.xml")),
        "--root",
        str(host),
        "--once",
        "--server",
        str(api.url),
        env=_env(NODE_NAME=NODE),
    )

    assert await labeller.wait() == 0, labeller.stderr
    assert NODE_DETECTION_ANNOTATION in api.node(NODE)["metadata"]["annotations"]


@pytest.mark.asyncio
@pytest.mark.shared
async def test_once_against_a_missing_node_fails_with_one_clear_line(
    api: ClusterAPI, host: Path
) -> None:
    labeller = await start(
        "--node-name",
        "no-such-node",
        "--domcaps-file",
        str(domcaps("aarch64-cca.xml")),
        "--root",
        str(host),
        "--once",
        "--server",
        str(api.url),
    )

    assert await labeller.wait() == 1
    assert "kubevirt-cca labeller: error: get nodes: 404" in labeller.stderr
    assert "Traceback" not in labeller.stderr


async def start_daemon(
    api: ClusterAPI, host: Path, running: list[Labeller], *source: str, interval: str
) -> Labeller:
    """The labeller as a daemon on NODE (health on a free port), its domcaps from the given flag."""
    labeller = await start(
        "--node-name",
        NODE,
        *source,
        "--root",
        str(host),
        "--interval",
        interval,
        "--health-port",
        "127.0.0.1:0",
        "--server",
        str(api.url),
    )
    running.append(labeller)
    return labeller


# --- SIGTERM -----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.shared
async def test_sigterm_during_a_patch_waits_for_it_and_leaves_the_node_whole(
    api: ClusterAPI, host: Path, running: list[Labeller]
) -> None:
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={})
    arrived = asyncio.Event()

    async def slow_server(cluster: ClusterAPI, patch: Any) -> None:
        arrived.set()
        await asyncio.sleep(0.5)  # the labeller gets SIGTERM while this write is in flight

    api.before_patch.append(slow_server)
    labeller = await start_daemon(
        api, host, running, "--domcaps-file", str(domcaps("aarch64-cca.xml")), interval="60"
    )

    async with asyncio.timeout(20):
        await arrived.wait()
    labeller.process.send_signal(signal.SIGTERM)

    assert await labeller.wait() == 0, labeller.stderr
    node = api.node(NODE)
    assert node["metadata"]["labels"] == {**FOREIGN_LABELS, **ALL_LABELS}
    assert NODE_DETECTION_ANNOTATION in node["metadata"]["annotations"]
    assert len(api.patches()) == 1
    assert [e["reason"] for e in api.events()] == ["CCACapable"]
    assert "received SIGTERM" in labeller.stderr
    assert "labeller stopped" in labeller.stderr


@pytest.mark.asyncio
@pytest.mark.shared
async def test_sigterm_during_detection_writes_nothing(
    api: ClusterAPI, host: Path, tmp_path: Path, running: list[Labeller]
) -> None:
    before = {**FOREIGN_LABELS, "kubevirt.io/cca": "true"}
    api.add_node(NODE, labels=dict(before), annotations={})
    started = tmp_path / "virsh-started"
    command = (
        f"sh -c 'touch {shlex.quote(str(started))}; sleep 1; "
        f"cat {shlex.quote(str(domcaps('aarch64-no-cca.xml')))}'"
    )
    labeller = await start_daemon(api, host, running, "--domcaps-command", command, interval="60")

    await until(started.exists)
    labeller.process.send_signal(signal.SIGTERM)

    assert await labeller.wait() == 0, labeller.stderr
    assert api.patches() == []
    assert api.gets() == []
    assert api.node(NODE)["metadata"]["labels"] == before


@pytest.mark.asyncio
@pytest.mark.shared
async def test_ready_after_the_first_reconcile_and_sigterm_ends_the_wait(
    api: ClusterAPI, host: Path, running: list[Labeller]
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    labeller = await start_daemon(
        api, host, running, "--domcaps-file", str(domcaps("aarch64-cca.xml")), interval="3600"
    )
    async with asyncio.timeout(20):
        port = await labeller.port

    async with aiohttp.ClientSession() as http:

        async def status(path: str) -> int:
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                return response.status

        async with asyncio.timeout(20):
            while await status("/readyz") != 200:
                await asyncio.sleep(0.02)
        assert await status("/healthz") == 200
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = await response.text()

    assert owned(api.node(NODE)) == ALL_LABELS
    assert "kubevirt_cca_labeller_cca_capable 1.0" in metrics
    loop = asyncio.get_running_loop()
    sent = loop.time()
    labeller.process.send_signal(signal.SIGTERM)
    assert await labeller.wait() == 0, labeller.stderr
    assert loop.time() - sent < 10  # not the hour-long interval


@pytest.mark.asyncio
@pytest.mark.shared
async def test_every_labeller_metric_of_the_monitoring_rules_is_served(
    api: ClusterAPI, host: Path, running: list[Labeller]
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    labeller = await start_daemon(
        api, host, running, "--domcaps-file", str(domcaps("aarch64-cca.xml")), interval="3600"
    )
    async with asyncio.timeout(20):
        port = await labeller.port
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(20):
            while True:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.02)
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()

    assert labeller_metrics(), "the rules reference no labeller metric"
    missing = labeller_metrics() - scraped_names(text)
    assert not missing, f"the rules read metrics the labeller does not export: {sorted(missing)}"
    # What KubevirtCCALabellerStale and KubevirtCCANoCapableNode read, after one good check.
    assert scraped_value(text, "kubevirt_cca_labeller_last_success_timestamp_seconds") > 0
    assert scraped_value(text, "kubevirt_cca_labeller_cca_capable") == 1


# --- Usage errors (in process: argparse, before anything starts) ------------------------------


def test_a_missing_node_name_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)

    assert main(["labeller", "--once", "--server", "http://127.0.0.1:9"]) == 2

    assert "--node-name is required (or set $NODE_NAME" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "expected a positive number of seconds, got '0'"),
        (["--interval", "soon"], "expected a number of seconds, got 'soon'"),
        (["--health-port", "http"], "expected PORT or ADDRESS:PORT"),
        (["--health-port", "70000"], "port must be between 0 and 65535"),
        (["--domcaps-file", "a.xml", "--domcaps-command", "virsh"], "not allowed with argument"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["labeller", "--node-name", NODE, *args])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert f"argument {args[0]}" in err or "argument --domcaps" in err


# --- Only the named command's module is loaded (the labeller's memory budget) ----------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["labeller", "--once"], "labeller"),
        (["--log-level", "INFO", "labeller"], "labeller"),
        (["--log-level=DEBUG", "labeller"], "labeller"),
        (["--help"], None),
        (["--version"], None),
        (["labeler"], None),  # a typo: the full parser names the valid choices
        ([], None),
    ],
)
def test_the_parser_is_built_for_the_named_command_only(argv: list[str], named: str | None) -> None:
    from kubevirt_cca.cli import _named_command

    assert _named_command(argv) == named


def test_a_labeller_process_does_not_load_the_other_commands() -> None:
    import subprocess

    probe = (
        "import sys; from kubevirt_cca.cli import build_parser, _named_command; "
        "build_parser(_named_command(['labeller'])); "
        "print(sorted(m for m in sys.modules if m.startswith('kubevirt_cca.cli.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert done.stdout.strip() == "['kubevirt_cca.cli.common', 'kubevirt_cca.cli.labeller']"
