"""Where admission's time goes, per step, in this process (no TLS, no HTTP).

Run: uv run python benchmarks/profile_admission.py [--calls N] [--profile]

The steps are the webhook's, in its order, for the mutating review of bench_webhook.py (a
labelled VMI with parameters) and for the validating review of the mutated VMI:

- parse      ``parse_review``: the body's JSON and the checks admission relies on;
- decide     ``plan_vmi`` / ``validate_vmi``: the request parser and the rules;
- patch      the rest of ``admit`` for mutate: warnings, the patch's JSON + base64 (for
             validate, ``admit`` minus ``validate_vmi``);
- serialise  ``build_review`` + ``json.dumps`` of the answer, as the server writes it;
- canned     what the canned round does instead of all of the above (returns stored bytes).

Each step is timed with ``time.process_time_ns`` over ``--calls`` calls, interleaved round-robin,
so the figures are CPU time and read as ratios on a loaded machine. ``--profile`` adds cProfile's
top functions of the whole path (parse + admit + serialise) by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable

from bench_webhook import VMI, review
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.admit import admit
from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.reviews import AdmissionResponse, build_review, parse_review
from kubevirt_cca.core.admission.validate import validate_vmi
from kubevirt_cca.core.vmi.webhook_table import Endpoint


def per_call_us(fns: dict[str, Callable[[], object]], calls: int) -> dict[str, float]:
    """Median over 5 blocks of the CPU µs per call of each function, blocks interleaved."""
    blocks: dict[str, list[float]] = {name: [] for name in fns}
    per_block = max(calls // 5, 1)
    for _ in range(5):
        for name, fn in fns.items():
            started = time.process_time_ns()
            for _ in range(per_block):
                fn()
            blocks[name].append((time.process_time_ns() - started) / per_block / 1000)
    return {name: statistics.median(values) for name, values in blocks.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cluster = ClusterView(gates=all_gates_on())
    mutate_body = json.dumps(review(VMI)).encode()
    mutate_request = parse_review(mutate_body)
    mutated = patches.apply(VMI, plan_vmi(VMI, cluster).patch)
    validate_body = json.dumps(review(mutated)).encode()
    validate_request = parse_review(validate_body)
    mutate_verdict = admit(Endpoint.MUTATE_VMI, mutate_request, cluster)
    validate_verdict = admit(Endpoint.VALIDATE_VMI, validate_request, cluster)
    canned = json.dumps(build_review(mutate_verdict.response), separators=(",", ":")).encode()

    compact = json.JSONEncoder(separators=(",", ":"))  # as the server writes its answers

    def serialise(response: AdmissionResponse) -> Callable[[], bytes]:
        return lambda: compact.encode(build_review(response)).encode()

    timed = per_call_us(
        {
            "mutate: parse": lambda: parse_review(mutate_body),
            "mutate: decide (plan_vmi)": lambda: plan_vmi(VMI, cluster),
            "mutate: admit (decide + patch)": lambda: admit(
                Endpoint.MUTATE_VMI, mutate_request, cluster
            ),
            "mutate: serialise": serialise(mutate_verdict.response),
            "validate: parse": lambda: parse_review(validate_body),
            "validate: decide (validate_vmi)": lambda: validate_vmi(
                mutated, operation="CREATE", cluster=cluster
            ),
            "validate: admit": lambda: admit(Endpoint.VALIDATE_VMI, validate_request, cluster),
            "validate: serialise": serialise(validate_verdict.response),
            "canned: stored bytes": lambda: canned,
        },
        args.calls,
    )
    print(
        f"{args.calls} calls per step, CPU µs per call (median of 5 interleaved blocks), "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for name, us in timed.items():
        print(f"  {name:34} {us:8.1f} µs")
    for kind, decide, whole in (
        ("mutate", "mutate: decide (plan_vmi)", "mutate: admit (decide + patch)"),
        ("validate", "validate: decide (validate_vmi)", "validate: admit"),
    ):
        total = timed[f"{kind}: parse"] + timed[whole] + timed[f"{kind}: serialise"]
        print(
            f"{kind}: parse {timed[f'{kind}: parse']:.1f} + decide {timed[decide]:.1f} + "
            f"patch {timed[whole] - timed[decide]:.1f} + serialise "
            f"{timed[f'{kind}: serialise']:.1f} = {total:.1f} µs of our logic per review"
        )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.calls):
            request = parse_review(mutate_body)
            verdict = admit(Endpoint.MUTATE_VMI, request, cluster)
            compact.encode(build_review(verdict.response)).encode()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
