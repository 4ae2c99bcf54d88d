"""Issue 21, items 7, 8 and 10, through the real console script: every command that reads a
manifest refuses what kubectl refuses (a key given twice, NaN and infinities) and what Python
cannot convert (an integer of more than 4,300 digits), naming the line or field, with exit 2
and one line on standard error; and every source is read to the 16 MiB bound, whatever it is
(standard input that never ends, a character device, a FIFO)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT

EXAMPLE = (ROOT / "examples" / "vmi-cca.yaml").read_text()
LONG = "9" * 5000

# The example with one hostile line added under spec.domain (its "devices:" line is there).
HOSTILE_YAML = {
    "long-integer": ("    cores: " + LONG, "spec.domain.cores: an integer of 5000 digits"),
    "long-negative": ("    cores: -" + LONG, "spec.domain.cores: an integer of 5000 digits"),
    "long-hexadecimal": ("    cores: 0x" + "f" * 4000, "spec.domain.cores: an integer is too long"),
    "nan": ("    cores: .nan", "spec.domain.cores: NaN is not a number JSON can hold"),
    "inf": ("    cores: .inf", "spec.domain.cores: +Inf is not a number JSON can hold"),
    "minus-inf": ("    cores: [1, -.Inf]", "spec.domain.cores[1]: -Inf is not a number"),
    "float-overflow": ("    cores: 1.0e+400", "spec.domain.cores: +Inf is not a number"),
    "duplicate-key": (
        "    devices: {}",
        'not valid YAML: mapping key "devices" already defined at line',
    ),
    "duplicate-in-flow": (
        "    cpu: {cores: 1, cores: 2}",
        'not valid YAML: mapping key "cores" already defined at line',
    ),
}
HOSTILE_JSON = {
    "long-integer": ('{"kind": "VirtualMachineInstance", "n": ' + LONG + "}", "n: an integer"),
    "nan": ('{"kind": "VirtualMachineInstance", "n": NaN}', "n: NaN is not a number"),
    "infinity": ('{"kind": "VirtualMachineInstance", "n": -Infinity}', "n: -Inf is not"),
    "overflow": ('{"kind": "VirtualMachineInstance", "n": 1e999}', "n: +Inf is not"),
    "duplicate": (
        '{"kind": "VirtualMachineInstance", "metadata": {}, "metadata": {"name": "x"}}',
        "not valid JSON: the member 'metadata' is given more than once",
    ),
}
# Each command that reads a manifest, with the arguments that follow the file.
COMMANDS = {
    "validate": ("validate", "{}"),
    "convert": ("convert", "{}"),
    "render": ("render", "{}"),
    "validate --old": ("validate", str(ROOT / "examples" / "vmi-cca.yaml"), "--old", "{}"),
}


def hostile_yaml(line: str) -> str:
    head, tail = EXAMPLE.split("    devices:", 1)
    return head + line + "\n    devices:" + tail


def assert_unusable(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, lines
    assert words in errors[0]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(HOSTILE_YAML))
def test_hostile_yaml_is_refused_naming_where(tmp_path: Path, command: str, case: str) -> None:
    line, words = HOSTILE_YAML[case]
    path = tmp_path / "vmi.yaml"
    path.write_text(hostile_yaml(line))
    args = [a.format(path) for a in COMMANDS[command]]
    assert_unusable(kubevirt_cca(*args), f"{path}: ")
    assert_unusable(kubevirt_cca(*args), words)


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
@pytest.mark.parametrize("command", ["validate", "convert", "render"])
def test_hostile_json_is_refused_naming_where(tmp_path: Path, command: str, case: str) -> None:
    text, words = HOSTILE_JSON[case]
    path = tmp_path / "vmi.json"
    path.write_text(text)
    assert_unusable(kubevirt_cca(command, str(path)), words)


@pytest.mark.parametrize("command", ["validate", "convert", "render"])
def test_hostile_input_on_standard_input(command: str) -> None:
    line, words = HOSTILE_YAML["duplicate-key"]
    done = kubevirt_cca(command, "-", stdin=hostile_yaml(line))
    assert_unusable(done, f"standard input: {words}")


def test_a_second_metadata_without_the_label_is_not_admitted_plain(tmp_path: Path) -> None:
    """The issue's case: last-wins would drop the label and admit the VMI as a plain VM."""
    path = tmp_path / "vmi.yaml"
    path.write_text(EXAMPLE + "metadata:\n  name: plain\n")
    done = kubevirt_cca("validate", str(path))
    assert_unusable(done, 'mapping key "metadata" already defined at line')
    assert done.stdout == ""


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    """A YAML merge key ("<<") may be overridden by the mapping's own keys (not a duplicate)."""
    path = tmp_path / "vmi.yaml"
    path.write_text(
        "apiVersion: kubevirt.io/v1\n"
        "kind: VirtualMachineInstance\n"
        "metadata:\n"
        "  name: merged\n"
        "  annotations: &common {team: a, owner: b}\n"
        "spec:\n"
        "  domain: {devices: {}}\n"
        "  nodeSelector:\n"
        "    <<: *common\n"
        "    owner: c\n"
    )
    done = kubevirt_cca("convert", str(path))
    assert done.returncode == 0, done.stderr
    assert "owner: c" in done.stdout and "team: a" in done.stdout


# --- item 8: every source read to the bound ---------------------------------------------------

MIB = 1024 * 1024
# What the command may hold at most while refusing an endless source (it reached 3-15 GB):
# the interpreter and libraries (~50 MiB) plus one copy of the 16 MiB bound, with room.
RSS_BOUND_KIB = 200 * 1024


def run_measured(
    *args: str, stdin: int | None = None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the command and report its peak resident memory (KiB), measured by a wrapper
    process so that no other child of the test process counts."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:])\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(f'PEAK {peak}', file=sys.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "kubevirt_cca", *args],
        capture_output=True,
        text=True,
        stdin=stdin,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    peak = int(lines[-1].removeprefix("PEAK "))
    done.stderr = "\n".join(lines[:-1]) + "\n"
    return done, peak


@pytest.mark.parametrize("command", ["validate", "convert", "render"])
def test_a_character_device_is_read_to_the_bound(command: str) -> None:
    done, peak = run_measured(command, "/dev/zero")
    assert_unusable(done, "/dev/zero: larger than 16 MiB")
    assert peak < RSS_BOUND_KIB


@pytest.mark.parametrize("command", ["validate", "convert", "render"])
def test_endless_standard_input_is_read_to_the_bound(command: str) -> None:
    with open("/dev/zero", "rb") as endless:
        done, peak = run_measured(command, "-", stdin=endless.fileno())
    assert_unusable(done, "standard input: larger than 16 MiB")
    assert peak < RSS_BOUND_KIB


@pytest.fixture
def endless_fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO that a thread fills with YAML-looking lines until the reader goes away."""
    path = tmp_path / "fifo"
    os.mkfifo(path)

    def fill() -> None:
        try:
            with path.open("wb") as writer:
                while True:
                    writer.write(b"# a comment line that never ends the file\n" * 4096)
        except (BrokenPipeError, OSError):
            return

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    yield path
    thread.join(30)


def test_a_fifo_is_read_to_the_bound(endless_fifo: Path) -> None:
    done, peak = run_measured("validate", str(endless_fifo))
    assert_unusable(done, f"{endless_fifo}: larger than 16 MiB")
    assert peak < RSS_BOUND_KIB


def test_detect_reads_its_domcaps_to_the_bound() -> None:
    done, peak = run_measured("detect", "--domcaps", "/dev/zero", "--root", "/nonexistent")
    assert_unusable(done, "/dev/zero: larger than 16 MiB")
    assert peak < RSS_BOUND_KIB


def test_render_reads_its_domain_to_the_bound() -> None:
    done, peak = run_measured(
        "render", str(ROOT / "examples" / "vmi-cca.yaml"), "--domain", "/dev/zero"
    )
    assert_unusable(done, "/dev/zero: larger than 16 MiB")
    assert peak < RSS_BOUND_KIB


def test_standard_input_just_under_the_bound_is_read(tmp_path: Path) -> None:
    """The bound is the bound: a manifest padded to just under 16 MiB is still read."""
    padding = "#" * 1023 + "\n"
    text = EXAMPLE + padding * ((16 * MIB - len(EXAMPLE)) // len(padding) - 1)
    assert len(text.encode()) < 16 * MIB
    done = kubevirt_cca("convert", "-", stdin=text)
    assert done.returncode == 0, done.stderr[-500:]
    oversized = kubevirt_cca("convert", "-", stdin=text + padding * 2)
    assert_unusable(oversized, "standard input: larger than 16 MiB")


# --- item 12: a personalization value in hex ---------------------------------------------------


def test_a_hex_personalization_value_says_so_with_its_base64(tmp_path: Path) -> None:
    raw = bytes(range(64, 128))
    vmi = EXAMPLE.replace(
        '    cca.kubevirt.io/enabled: "true"\n',
        '    cca.kubevirt.io/enabled: "true"\n  annotations:\n'
        f'    cca.kubevirt.io/launch-security: \'{{"personalizationValue": "{raw.hex()}"}}\'\n',
    )
    path = tmp_path / "vmi.yaml"
    path.write_text(vmi)
    done = kubevirt_cca("validate", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [refusal] = [line for line in done.stderr.splitlines() if ": refused: " in line]
    assert refusal.endswith(
        "personalizationValue: decodes to 96 bytes; expected standard base64 of exactly 64 "
        "bytes; it looks like hex (128 hex digits are 64 bytes): their base64 is "
        + base64.b64encode(raw).decode()
    )
    # The value the message shows is admitted.
    fixed = vmi.replace(raw.hex(), base64.b64encode(raw).decode())
    path.write_text(fixed)
    assert kubevirt_cca("validate", str(path)).returncode == 0


# --- numbers too large for what they stand for -------------------------------------------------


def test_render_refuses_a_memory_no_quantity_can_say(tmp_path: Path) -> None:
    """A 400-digit quantity is an infinity as a float: int() of it was a traceback."""
    path = tmp_path / "vmi.yaml"
    path.write_text(EXAMPLE.replace("guest: 1Gi", 'guest: "' + "9" * 400 + 'Gi"'))
    done = kubevirt_cca("render", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("is more memory than a quantity can say (at most 8Ei)")
    assert "spec.domain.memory.guest: '99999" in done.stderr
