"""The command line's conventions (issue 23, item 7; docs/cli.md): a complete --help with an
example for every subcommand, exit status 2 for every usage error, a lazy top-level parser, the
kubectl plugin name, and the JSON envelope of ``validate --output json``."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevirt_cca.cli import COMMANDS, build_parser, main
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable (sub)subcommand's parser, by its words on the command line."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups and path:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaves(sub, (*path, name))


LEAVES = dict(leaves(build_parser(every=True)))


def test_the_static_table_is_what_each_module_registers() -> None:
    """The lazy --help reads COMMANDS; it must say what each module itself says."""
    parser = build_parser(every=True)
    group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    registered = {action.dest: action.help for action in group._choices_actions}
    assert registered == COMMANDS


@pytest.mark.parametrize("words", sorted(LEAVES), ids=" ".join)
def test_every_help_has_an_example_and_explains_every_option(words: tuple[str, ...]) -> None:
    parser = LEAVES[words]
    text = parser.format_help()
    assert "example:" in text, words
    examples = text.split("example:", 1)[1]
    # A line that runs this subcommand (global options such as --log-level may come first).
    runs = re.compile(r"kubevirt-cca (--[\w-]+ \S+ )*" + re.escape(" ".join(words)) + r"\b")
    assert runs.search(examples), words
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (words, action.dest)
        for option in action.option_strings:
            assert option in text, (words, option)


def test_webhook_help_lists_every_endpoint_of_the_webhook_table() -> None:
    text = LEAVES[("webhook",)].format_help()
    for hook in WEBHOOKS:
        assert f"{hook.path} " in text, hook.path


def test_convert_help_shows_the_way_back_to_native() -> None:
    assert "convert --to native" in LEAVES[("convert",)].format_help()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


@pytest.mark.parametrize("words", sorted(LEAVES), ids=" ".join)
def test_an_unknown_option_is_a_usage_error(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main([*words, "--no-such-option"], capsys)
    assert code == 2
    assert "unrecognized arguments: --no-such-option" in err or "required" in err, err
    assert "Traceback" not in err


# A bad value for each subcommand: an option out of its choices or type, else a file that is
# not there (the command's own check, which must exit 2 too).
MISSING = "/nonexistent/kubevirt-cca-test"
BAD_VALUES: dict[tuple[str, ...], list[str]] = {
    ("render",): ["--dialect", "bogus", MISSING],
    ("detect",): ["--output", "yaml"],
    ("labeller",): ["--interval", "soon"],
    ("webhook",): ["--tls-cert-file", "a", "--tls-key-file", "b", "--port", "https"],
    ("validate",): [MISSING],
    ("convert",): ["--to", "xml", MISSING],
    ("hook",): ["--virtio-iommu", "maybe"],
    ("attest", "collect"): ["--nonce-file", MISSING, "--out", "-"],
    ("attest", "verify"): ["t", "--nonce-file", "n", "--trust-anchor", "a", "--output", "x"],
    ("attest", "show"): ["--output", "yaml", "t"],
    ("attest", "reference"): ["--output", "yaml"],
    ("attest", "node-profile"): ["--shape", "two", "2Gi", "D"],
    ("manifests",): ["--certificates", "acme"],
    ("doctor",): ["--output", "yaml"],
    ("uninstall",): ["--namespace", "kube-system"],
    ("certs", "ensure"): ["--health-port", "x"],
}


def test_every_subcommand_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) == set(LEAVES)


@pytest.mark.parametrize("words", sorted(BAD_VALUES), ids=" ".join)
def test_a_bad_value_is_a_usage_error(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main([*words, *BAD_VALUES[words]], capsys)
    assert code == 2, err
    assert "error:" in err and "Traceback" not in err, err


# The commands' own checks of a flag's value, past argparse: usage errors too (exit 2).
OWN_CHECKS = {
    "render-firmware": ["render", "examples/vmi-cca.yaml", "--firmware", "relative.fd"],
    "hook-firmware": ["hook", "--socket-dir", MISSING, "--firmware", "relative.fd"],
    "manifests-namespace": [
        "manifests",
        "--image",
        "registry.example/cca:1",
        "--namespace",
        "default",
    ],
    "manifests-no-image": ["manifests"],
    "labeller-no-node": ["labeller", "--once", "--node-name", ""],
    "validate-not-a-cr": [
        "validate",
        "examples/vmi-cca.yaml",
        "--kubevirt-cr",
        "examples/vmi-cca.yaml",
    ],
}


@pytest.mark.parametrize("case", sorted(OWN_CHECKS))
def test_a_bad_value_the_command_checks_itself_is_a_usage_error(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(OWN_CHECKS[case], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and ": error: " in err, err


PROBE = """\
import sys
from kubevirt_cca.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.startswith("kubevirt_cca.cli."))
print("loaded:", *loaded, file=sys.stderr)
"""


def imported_commands(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return done.stderr.strip().splitlines()[-1].split()[1:]


def test_the_top_level_help_imports_no_subcommand() -> None:
    assert imported_commands("--help") == []


def test_a_subcommands_help_imports_only_that_subcommand() -> None:
    assert imported_commands("render", "--help") == [
        "kubevirt_cca.cli.common",
        "kubevirt_cca.cli.render",
    ]


def test_the_kubectl_plugin_script_is_named_as_kubectl_shows_it() -> None:
    script = Path(sys.executable).parent / "kubectl-cca"
    assert script.exists(), "uv sync installs the kubectl-cca script ([project.scripts])"
    top = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("usage: kubectl cca ")
    assert "Run 'kubectl cca COMMAND --help'" in top.stdout
    doctor = subprocess.run(
        [str(script), "doctor", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert doctor.stdout.startswith("usage: kubectl cca doctor "), doctor.stdout
    bad = subprocess.run(
        [str(script), "doctor", "--output", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert bad.returncode == 2 and "kubectl cca doctor: error:" in bad.stderr


# --- validate --output json --------------------------------------------------------------------

EXAMPLES = ROOT / "examples"


def test_validate_json_admitted(tmp_path: Path) -> None:
    done = kubevirt_cca("validate", str(EXAMPLES / "vmi-cca.yaml"), "--output", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the notes are in the verdict
    report = json.loads(done.stdout)
    assert set(report) == {
        "schemaVersion",
        "kind",
        "verdict",
        "checks",
        "allowed",
        "object",
        "notes",
    }
    assert (report["schemaVersion"], report["kind"], report["verdict"]) == (
        "kubevirt-cca.io/v1",
        "AdmissionVerdict",
        "pass",
    )
    assert report["allowed"] is True
    assert report["checks"] == [{"name": "admission", "status": "pass", "message": "admitted"}]
    assert report["object"]["spec"]["nodeSelector"]["kubevirt.io/cca"] == "true"
    assert any("assuming the WorkloadEncryptionCCA and Sidecar" in n for n in report["notes"])


def test_validate_json_refused_lists_every_reason(tmp_path: Path) -> None:
    vmi = tmp_path / "vmi.json"
    vmi.write_text(
        json.dumps(
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstance",
                "metadata": {
                    "name": "bad",
                    "labels": {"cca.kubevirt.io/enabled": "true"},
                    "annotations": {
                        "cca.kubevirt.io/launch-security": json.dumps(
                            {"measurementAlgo": "md5", "colour": "red"}
                        )
                    },
                },
                "spec": {"domain": {"devices": {}}},
            }
        )
    )
    done = kubevirt_cca("validate", str(vmi), "--output", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["verdict"], report["allowed"], report["object"]) == ("fail", False, None)
    assert {c["status"] for c in report["checks"]} == {"fail"}
    where = "metadata.annotations[cca.kubevirt.io/launch-security]"
    assert {c["name"] for c in report["checks"]} == {f"{where}.measurementAlgo", f"{where}.colour"}


def test_validate_json_usage_error_prints_nothing_on_stdout() -> None:
    done = kubevirt_cca("validate", MISSING, "--output", "json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "kubevirt-cca validate: error:" in done.stderr
