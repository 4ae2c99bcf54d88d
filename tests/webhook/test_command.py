"""``kubevirt-cca webhook`` as a process: flags, TLS, the emulated API server, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest

from tests.admission.helpers import KUBEVIRT_CR, labelled, review
from tests.webhook.cluster import VMI, declare_resources

pytestmark = pytest.mark.asyncio


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_webhook_command_serves_until_sigterm(
    kmock: kmock.KubernetesEmulator, cert_files: tuple[Path, Path]
) -> None:
    declare_resources(kmock)
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = KUBEVIRT_CR
    cert, key = cert_files
    port, health = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from kubevirt_cca.cli import main; sys.exit(main())",
        "--log-level",
        "INFO",
        "webhook",
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--port",
        str(port),
        "--health-port",
        str(health),
        "--host",
        "127.0.0.1",
        "--server",
        str(kmock.url),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{health}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the webhook did not become ready")
            context = ssl.create_default_context(cafile=str(cert))
            body: dict[str, Any] = review(labelled(VMI))
            async with http.post(
                f"https://127.0.0.1:{port}/mutate-vmi", json=body, ssl=context
            ) as response:
                answer = await response.json()
        assert answer["response"]["uid"] == body["request"]["uid"]
        assert answer["response"]["allowed"] is True, answer
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert "webhook serving" in log and "verdict=allowed" in log
    decision = next(line for line in log.splitlines() if "verdict=allowed" in line)
    assert json.loads(decision.split("causes=")[1].split(" duration_ms")[0]) == []
