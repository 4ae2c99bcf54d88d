"""docs/attestation.md states the interfaces the code has (names, keys, order, signature)."""

from __future__ import annotations

import re

from kubevirt_cca.cli import build_parser
from kubevirt_cca.core.attestation.profile import PROFILE_KEYS, PROFILE_KEYS_RMM_2
from kubevirt_cca.core.attestation.verify import CHECK_NAMES
from tests.conftest import ROOT

TEXT = (ROOT / "docs" / "attestation.md").read_text()
SIGNATURE = (
    "kubevirt-cca attest reference --profile FILE (--firmware FILE | --kernel FILE "
    "[--initrd FILE])\n    --dtb FILE --memory SIZE [--output text|json] [--trace] "
    "[--corim FILE]"
)
PAYLOAD_SIGNATURE = (
    "kubevirt-cca attest reference --profile FILE --payload FILE\n"
    "    --memory SIZE [--output text|json] [--trace] [--corim FILE]"
)


def test_the_json_table_lists_every_check_in_order() -> None:
    line = next(row for row in TEXT.splitlines() if row.startswith("| `checks` |"))
    assert re.findall(r"`([a-z-]+)`", line.split("in this order:")[1])[: len(CHECK_NAMES)] == list(
        CHECK_NAMES
    )
    words = ["eight", "nine", "ten", "eleven", "twelve", "thirteen"]
    assert f"always all {words[len(CHECK_NAMES) - 8]}" in line


def test_every_profile_key_is_documented() -> None:
    rows = [row.split("|")[1] for row in TEXT.splitlines() if row.startswith("| `")]
    for key in PROFILE_KEYS + PROFILE_KEYS_RMM_2:
        assert any(f"`{key}`" in first_cell for first_cell in rows), key


def test_the_documented_signature_is_the_parser() -> None:
    assert SIGNATURE in TEXT
    usage = build_parser("attest").parse_args(
        [
            "attest",
            "reference",
            "--profile",
            "p",
            "--kernel",
            "k",
            "--initrd",
            "i",
            "--dtb",
            "d",
            "--memory",
            "1Gi",
            "--output",
            "json",
            "--trace",
            "--corim",
            "c",
        ]
    )
    assert (
        usage.profile,
        usage.kernel,
        usage.initrd,
        usage.dtb,
        usage.memory,
        usage.output,
        usage.trace,
        usage.corim,
    ) == ("p", "k", "i", "d", "1Gi", "json", True, "c")


def test_the_documented_payload_form_is_the_parser() -> None:
    assert PAYLOAD_SIGNATURE in TEXT
    usage = build_parser("attest").parse_args(
        ["attest", "reference", "--profile", "p", "--payload", "b", "--memory", "2Mi"]
    )
    assert (usage.profile, usage.payload, usage.dtb, usage.memory) == ("p", "b", None, "2Mi")
