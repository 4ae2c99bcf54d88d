"""Hostile clients against a live webhook: does anyone else notice, and does memory come back?

The webhook runs in a second process (default limits, as the Deployment runs it), pinned to
CPU 0 where possible. This process measures an honest client (one keep-alive connection, one
labelled-VMI review after another, as the API server sends them) in four phases:

- ``quiet``      nobody else;
- ``stall``      4 attackers in a loop each send a 2 MiB gzip body that inflates to 2 GiB
                 (issue 13: it used to be inflated on the event loop after the answer);
- ``slow``       slow clients open TLS connections from many loopback addresses, send part of a
                 request head and then one byte a second: ``--slow`` connections (default 2,000),
                 well past the connection cap;
- ``after``      all attackers gone.

The attackers run in a third process, so their own CPU does not slow the honest client's
loop (the machine's two cores are still shared by all three). Printed per phase: the honest
client's reviews, p50 / p99 / max latency; the server's RSS (peak during the phase and at its
end); for the attacks, what the attackers saw. Bounded: about
``4 x --seconds + 15`` plus set-up (default ~60 s).

    uv run python benchmarks/bench_hostile.py [--seconds 8] [--slow 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import ssl
import statistics
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_webhook import VMI, can_pin, review, server_process, write_pair

PATH = "/mutate-vmi"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gzip_bomb(inflated: int) -> bytes:
    """Concatenated gzip members of 1 MiB of zeros each (a valid gzip stream)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = compressor.compress(bytes(1 << 20)) + compressor.flush()
    return member * (inflated >> 20)


async def open_tls(
    port: int, context: ssl.SSLContext, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1", local_addr=(source, 0)
        ),
        10,
    )


class Honest:
    """One keep-alive connection, reviews back to back; latencies of the current phase."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port, self.context = port, context
        self.latencies: list[float] = []
        self.failures = 0
        body = json.dumps(review(VMI)).encode()
        self.request = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "\r\n"
        ).encode() + body

    async def run(self, stop: asyncio.Event) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while not stop.is_set():
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = await open_tls(self.port, self.context, "127.0.0.1")
                reader, writer = conn
                writer.write(self.request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await asyncio.wait_for(reader.readexactly(length), 10)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head[:40])
                self.latencies.append(time.perf_counter() - started)
            except (
                TimeoutError,
                OSError,
                asyncio.IncompleteReadError,
                RuntimeError,
                ssl.SSLError,
                IndexError,
                ValueError,
            ):
                self.failures += 1
                if conn is not None:
                    conn[1].close()
                conn = None  # the server may close an idle connection: reconnect
            await asyncio.sleep(0.005)


async def stall_attacker(
    port: int, context: ssl.SSLContext, body: bytes, stop: asyncio.Event, seen: dict[str, int]
) -> None:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            reader, writer = await open_tls(port, context, "127.0.0.9")
            writer.write(head)
            writer.write(body)
            answer = await asyncio.wait_for(reader.read(200), 10)
            key = answer[:12].decode(errors="replace") or "closed"
            seen[key] = seen.get(key, 0) + 1
            writer.close()
        except (TimeoutError, OSError, ssl.SSLError):
            seen["error"] = seen.get("error", 0) + 1


async def slow_client(
    port: int, context: ssl.SSLContext, source: str, stop: asyncio.Event, seen: dict[str, int]
) -> None:
    try:
        reader, writer = await open_tls(port, context, source)
    except (TimeoutError, OSError, ssl.SSLError):
        seen["connect failed"] = seen.get("connect failed", 0) + 1
        return
    started = time.perf_counter()
    try:
        writer.write(b"POST /validate-vmi HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while not stop.is_set():
            writer.write(b"X")  # one byte a second
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    break  # the server closed the connection
            except TimeoutError:
                continue  # still open: keep dribbling
    except (OSError, ssl.SSLError):
        pass
    finally:
        held = time.perf_counter() - started
        bucket = "cut off" if not stop.is_set() else "held to the end"
        seen[bucket] = seen.get(bucket, 0) + 1
        seen["max held ms"] = max(seen.get("max held ms", 0), int(held * 1000))
        writer.close()


def attack_process(kind: str, port: int, cafile: str, seconds: float, slow: int, out: Any) -> None:
    """The attackers, in their own process so their CPU does not slow the honest client."""

    async def run() -> dict[str, int]:
        context = ssl.create_default_context(cafile=cafile)
        stop, seen = asyncio.Event(), dict[str, int]()
        if kind == "stall":
            bomb = gzip_bomb(2 << 30)
            tasks = [
                asyncio.create_task(stall_attacker(port, context, bomb, stop, seen))
                for _ in range(4)
            ]
        else:
            # 250 addresses x up to 8 connections each (127.0.2.1 ...); the honest client is
            # on 127.0.0.1, like the API server on its own address.
            tasks = [
                asyncio.create_task(
                    slow_client(port, context, f"127.0.{2 + i // 250}.{1 + i % 250}", stop, seen)
                )
                for i in range(slow)
            ]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return seen

    out.put(asyncio.run(run()))


@dataclass(frozen=True)
class Attack:
    kind: str  # "stall" or "slow"
    port: int
    cafile: str
    slow: int


async def phase(
    name: str, seconds: float, honest: Honest, pid: int, attack: Attack | None = None
) -> dict[str, Any]:
    """``seconds`` of the honest client, with the attack running in another process."""
    honest.latencies.clear()
    honest.failures = 0
    stop = asyncio.Event()
    attacker, out = None, None
    if attack is not None:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        attacker = ctx.Process(
            target=attack_process,
            args=(attack.kind, attack.port, attack.cafile, seconds, attack.slow, out),
        )
        attacker.start()
        await asyncio.sleep(1.0)  # the attacker process starts (imports) before we measure
    task = asyncio.create_task(honest.run(stop))
    peak = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(task, return_exceptions=True)
    seen: dict[str, int] = {}
    if attacker is not None and out is not None:
        seen = await asyncio.to_thread(out.get, True, 60)
        attacker.join(30)
    await asyncio.sleep(1.0)  # connections closing
    lat = sorted(honest.latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
    return {
        "phase": name,
        "reviews": len(lat),
        "failures": honest.failures,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        "rss_peak_mib": peak / 1024,
        "rss_end_mib": rss_kib(pid) / 1024,
        "attackers": dict(sorted(seen.items())),
    }


async def bench(
    port: int, context: ssl.SSLContext, cafile: str, pid: int, *, seconds: float, slow: int
) -> list[dict[str, Any]]:
    honest = Honest(port, context)
    # The slow phase outlasts the head deadline (10 s), so its cut-offs show.
    return [
        await phase("quiet", seconds, honest, pid),
        await phase("stall", seconds, honest, pid, Attack("stall", port, cafile, slow)),
        await phase("slow", seconds + 15, honest, pid, Attack("slow", port, cafile, slow)),
        await phase("after", seconds, honest, pid),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--slow", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = write_pair(Path(tmp))
        ctx = multiprocessing.get_context("spawn")
        ports, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(
            target=server_process, args=(str(cert), str(key), b"{}", ports, stop, can_pin())
        )
        server.start()
        try:
            port = ports.get(timeout=60)
            context = ssl.create_default_context(cafile=str(cert))
            assert server.pid is not None
            results = asyncio.run(
                bench(port, context, str(cert), server.pid, seconds=args.seconds, slow=args.slow)
            )
        finally:
            stop.set()
            server.join(30)
    print(
        f"{'phase':<7} {'reviews':>7} {'fail':>4} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'RSS peak':>9} {'RSS end':>8}  attackers"
    )
    for r in results:
        print(
            f"{r['phase']:<7} {r['reviews']:>7} {r['failures']:>4} {r['p50_ms']:>7.2f} "
            f"{r['p99_ms']:>7.2f} {r['max_ms']:>7.1f} {r['rss_peak_mib']:>7.1f}Mi "
            f"{r['rss_end_mib']:>6.1f}Mi  {r['attackers'] or '-'}"
        )


if __name__ == "__main__":
    main()
