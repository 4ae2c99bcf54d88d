"""Benchmark: the Plugins path's MutateDomain over its real unix socket, against the bare core.

Run: uv run python benchmarks/bench_plugin_hook.py [--calls N]

It starts the plugin container's command as it runs in a pod (``kubevirt-cca hook
--plugin-socket PATH``, its own process, logging its per-call line at INFO to /dev/null) and
calls ``DomainHookService/MutateDomain`` with ../shared/fixtures/kubevirt/domains/kubevirt-arm64.xml
and a CCA VMI (context ``Boot``), as virt-launcher does: a new connection per call (it dials the
socket named in the Plugin object), and, for the transport's share, one kept connection. In the
same run, interleaved round-robin, it times the bare core (``mutate_domain``: VMI JSON parse +
rewrite), so the figures read as a ratio on a noisy machine. KubeVirt allows a domain hook well
under 20 s; the target here is the hook sidecar's, 5 ms p99.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

from hook_inputs import cca_vmi, read_domain, report, start_hook, stop
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.hook.mutate_domain import MutateCall, mutate_domain
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2 as plugin_pb2
from kubevirt_cca.hookproto import api_plugins_v1alpha1_pb2_grpc as plugin_grpc
from timing import sample


def start_plugin(socket: Path) -> subprocess.Popen[bytes]:
    return start_hook(socket, "--plugin-socket", str(socket), what="the plugin container's command")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    domain = read_domain(args.calls, parser)
    if domain is None:
        return 2
    vmi = cca_vmi({})
    settings = Settings(dialect=Dialect.QEMU_COMMANDLINE)
    call = MutateCall(domain_type="libvirt", domain=domain, vmi=vmi, invocation_context="Boot")
    request = plugin_pb2.MutateDomainRequest(
        domain_type="libvirt",
        domain=domain,
        vmi=vmi,
        sidecar_context=plugin_pb2.SidecarContext(invocation_context="Boot"),
    )
    workdir = Path(tempfile.mkdtemp(prefix="kcca-bench-", dir="/tmp"))
    socket = workdir / "kubevirt-cca" / "kubevirt-cca.sock"
    process = start_plugin(socket)
    try:
        address = f"unix:{socket}"
        expected = mutate_domain(call, settings).domain_xml

        def per_call_connection() -> None:
            with grpc.insecure_channel(address) as channel:
                answer = plugin_grpc.DomainHookServiceStub(channel).MutateDomain(
                    request, timeout=20
                )
            assert answer.domain == expected

        with grpc.insecure_channel(address) as shared:
            stub = plugin_grpc.DomainHookServiceStub(shared)

            def one_connection() -> None:
                assert stub.MutateDomain(request, timeout=20).domain == expected

            rows = sample(
                {
                    "core mutate_domain": lambda: mutate_domain(call, settings),
                    "socket, one connection": one_connection,
                    "socket, new connection per call": per_call_connection,
                },
                args.calls,
            )
    finally:
        stop(process, workdir)
    return report(
        rows,
        heading=f"{args.calls} calls per row (interleaved), domain {len(domain)} bytes",
        core_row="core mutate_domain",
    )


if __name__ == "__main__":
    sys.exit(main())
