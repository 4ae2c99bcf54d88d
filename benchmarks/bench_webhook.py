"""Admission over TLS on loopback: reviews per second and p50/p99 latency at 16 connections.

The webhook runs in a second process (one asyncio loop), pinned to CPU 0, with a fixed cluster
view; this process, pinned to the other CPUs, drives it over HTTPS with 16 concurrent keep-alive
connections. Three rounds against the same server in the same run:

- ``canned``       the server answers a precomputed AdmissionReview (its HTTP + TLS + JSON
                   floor; the baseline),
- ``mutate-vmi``   a labelled VMI through the full mutating logic (the most work we do),
- ``validate-vmi`` the mutated VMI through validation.

Targets (docs/performance.md): >= 1,000 reviews/s on one core, p99 <= 10 ms at 16
connections, and our logic adding <= 30 % over the canned answer. Besides wall-clock rate and
latency (which the client, on the same 2-core machine, also shapes), the script reads the
server process's CPU time per review from /proc: the one-core capacity, and a ratio the
machine's load barely moves.

    uv run python benchmarks/bench_webhook.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import ipaddress
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The server runs on the webhook tests' fixed cluster view (tests/webhook/cluster.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VMI: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {
        "name": "realm",
        "namespace": "default",
        "labels": {"cca.kubevirt.io/enabled": "true", "special": "bench"},
        "annotations": {
            "cca.kubevirt.io/launch-security": (
                '{"measurementAlgo": "sha256", "measurementLog": true}'
            )
        },
    },
    "spec": {
        "domain": {
            "devices": {
                "disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "default", "masquerade": {}}],
            },
            "memory": {"guest": "1Gi"},
            "resources": {},
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [
            {"name": "containerdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora"}}
        ],
    },
}


def review(obj: dict[str, Any], uid: str = "bench") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachineInstance"},
            "resource": {
                "group": "kubevirt.io",
                "version": "v1",
                "resource": "virtualmachineinstances",
            },
            "operation": "CREATE",
            "namespace": "default",
            "name": "realm",
            "userInfo": {"username": "bench"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


def write_pair(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1


def server_process(
    cert: str, key: str, canned: bytes, ports: Any, stop: Any, pin: bool, profile: str | None = None
) -> None:
    """The webhook, as the Deployment runs it, minus the API server (a fixed cluster view)."""
    from tests.webhook.cluster import StaticCluster

    from kubevirt_cca.adapters.webhook.server import WebhookApp, serve
    from kubevirt_cca.adapters.webhook.tls import ReloadingTLS
    from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on

    if pin:
        os.sched_setaffinity(0, {0})  # the server gets one core, the client the other

    from aiohttp import web

    class CannedWebhookApp(WebhookApp):
        """The production server plus the baseline route: /canned reads the body as the
        endpoints do (in 64 KiB chunks, bounded) and answers stored bytes."""

        def https_app(self) -> web.Application:
            app = super().https_app()
            app.router.add_post("/canned", self._canned)
            return app

        async def _canned(self, request: web.Request) -> web.Response:
            size = 0
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > self.max_body:
                    break
            return web.Response(body=canned, content_type="application/json")

    async def main() -> None:
        app = CannedWebhookApp(
            StaticCluster(ClusterView(gates=all_gates_on())), tls=ReloadingTLS(cert, key)
        )
        running = await serve(app, host="127.0.0.1", port=0, health_port=0)
        ports.put(running.https_port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await running.stop()

    if profile is None:
        asyncio.run(main())
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main())
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), robust to a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    url: str,
    body: bytes,
    *,
    seconds: float,
    connections: int,
    context: ssl.SSLContext,
    server_pid: int,
) -> dict[str, float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(deadline: float) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    payload = await resp.read()
                    if resp.status != 200 or b'"uid":"bench"' not in payload:
                        raise RuntimeError(f"unexpected answer {resp.status}: {payload[:200]!r}")
                latencies.append(time.perf_counter() - started)

        warm = time.perf_counter() + min(1.0, seconds / 5)
        await asyncio.gather(*(worker(warm) for _ in range(connections)))
        latencies.clear()
        cpu = cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(connections)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server_pid) - cpu
    ordered = sorted(latencies)
    return {
        "reviews": len(ordered),
        "rate": len(ordered) / elapsed,
        "server_cpu_us": cpu / len(ordered) * 1e6,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="cycles of the three rounds, interleaved; medians are reported",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server to CPU 0 and the client to the others "
        "(pinning isolates them, but hurts on a machine busy with other work)",
    )
    parser.add_argument(
        "--profile-server",
        metavar="ROUND",
        choices=["canned", "mutate-vmi", "validate-vmi"],
        help="run only ROUND, with cProfile in the server process, and print "
        "where the server's time goes (slower: no figures to compare)",
    )
    args = parser.parse_args()

    from kubevirt_cca.core.admission.admit import admit
    from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
    from kubevirt_cca.core.admission.patches import apply
    from kubevirt_cca.core.admission.reviews import build_review, parse_review
    from kubevirt_cca.core.vmi.webhook_table import Endpoint

    mutate_body = json.dumps(review(VMI)).encode()
    verdict = admit(
        Endpoint.MUTATE_VMI, parse_review(mutate_body), ClusterView(gates=all_gates_on())
    )
    canned = json.dumps(build_review(verdict.response), separators=(",", ":")).encode()
    patch = json.loads(base64.b64decode(verdict.response["patch"]))
    validate_body = json.dumps(review(apply(VMI, patch))).encode()

    pin = args.pin and can_pin()
    loadavg = Path("/proc/loadavg")
    load_before = loadavg.read_text().split()[0] if loadavg.exists() else "unknown"
    if pin:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    with tempfile.TemporaryDirectory() as folder:
        cert, key = write_pair(Path(folder))
        spawn = multiprocessing.get_context("spawn")
        ports, stop = spawn.Queue(), spawn.Event()
        server = spawn.Process(
            target=server_process,
            args=(
                str(cert),
                str(key),
                canned,
                ports,
                stop,
                pin,
                str(Path(folder) / "server.prof") if args.profile_server else None,
            ),
        )
        server.start()
        try:
            port = ports.get(timeout=60)
            context = ssl.create_default_context(cafile=str(cert))
            base = f"https://127.0.0.1:{port}"
            runs: dict[str, list[dict[str, float]]] = {}
            for _ in range(args.repeat):
                for name, path, body in (
                    ("canned", "/canned", mutate_body),
                    ("mutate-vmi", "/mutate-vmi", mutate_body),
                    ("validate-vmi", "/validate-vmi", validate_body),
                ):
                    if args.profile_server not in (None, name):
                        continue
                    runs.setdefault(name, []).append(
                        asyncio.run(
                            drive(
                                base + path,
                                body,
                                seconds=args.seconds,
                                connections=args.connections,
                                context=context,
                                server_pid=server.pid or 0,
                            )
                        )
                    )
        finally:
            stop.set()
            server.join(30)
        if args.profile_server:
            import pstats

            print(f"server profile of the {args.profile_server} round, by own time:")
            pstats.Stats(str(Path(folder) / "server.prof")).sort_stats("tottime").print_stats(30)
            return
    print(
        f"{'round':<14}{'reviews':>9}{'reviews/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server CPU/review':>19}{'CPU vs canned':>15}{'rate vs canned':>16}"
    )
    results = {
        name: {key: statistics.median(run[key] for run in rounds) for key in rounds[0]}
        for name, rounds in runs.items()
    }
    placement = "server pinned to CPU 0" if pin else "not pinned"
    print(
        f"{args.connections} connections, {args.repeat} x {args.seconds:g} s per round, "
        f"medians over the interleaved cycles, {placement}, load average before {load_before}"
    )
    for name, r in results.items():
        ratio = results["canned"]["rate"] / r["rate"]
        cpu = r["server_cpu_us"] / results["canned"]["server_cpu_us"]
        print(
            f"{name:<14}{r['reviews']:>9.0f}{r['rate']:>11.0f}{r['p50_ms']:>9.2f}"
            f"{r['p99_ms']:>9.2f}{r['server_cpu_us']:>16.0f} us{cpu:>14.2f}x{ratio:>15.2f}x"
        )
    print(
        "server CPU/review: the webhook process's user+system CPU per answered review, so "
        f"{1e6 / results['mutate-vmi']['server_cpu_us']:.0f} mutate reviews/s fit on one core"
    )


if __name__ == "__main__":
    main()
