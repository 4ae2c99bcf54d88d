"""Issue 21 item 10 against the real peer: what ``kubectl create`` (kubectl 1.32 and the real
kube-apiserver, KubeVirt's CRDs, none of our admission) does with the hostile manifests that
``kubevirt-cca validate`` refuses.

- NaN and infinities: kubectl refuses them too, in the words our message quotes.
- A key given twice: kubectl keeps the last one without a word, so the second ``metadata:``
  without the label creates a plain VMI. ``validate`` refuses it (the issue asked for "as
  kubectl would"; this kubectl does not, older ones did: docs/vm-owners.md says so).
- An integer too long to read: kubectl turns it into a string, which the API server refuses
  in an integer field and stores in a string field; ``validate`` refuses it wherever it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT
from tests.peers.apiserver.cluster import ApiServer

pytestmark = pytest.mark.peers

EXAMPLE = (ROOT / "examples" / "vmi-cca.yaml").read_text()
ENABLED = "cca.kubevirt.io/enabled"


def with_line(line: str) -> str:
    head, tail = EXAMPLE.split("    devices:", 1)
    return head + line + "\n    devices:" + tail


def both(
    apiserver: ApiServer, namespace: str, path: Path, text: str
) -> tuple[str, tuple[int, str]]:
    """``validate``'s error line, and kubectl create's exit status and standard error."""
    path.write_text(text)
    ours = kubevirt_cca("validate", str(path))
    assert ours.returncode == 2 and "Traceback" not in ours.stderr, ours.stderr
    [error] = [line for line in ours.stderr.splitlines() if ": error: " in line]
    theirs = apiserver.kubectl("create", "-n", namespace, "-f", str(path), check=False)
    return error, (theirs.returncode, theirs.stderr)


@pytest.mark.parametrize(("value", "shown"), [(".nan", "NaN"), (".inf", "+Inf"), ("-.inf", "-Inf")])
def test_nan_and_infinities_are_refused_by_both_in_the_same_words(
    apiserver: ApiServer, namespace: str, tmp_path: Path, value: str, shown: str
) -> None:
    error, (code, stderr) = both(
        apiserver, namespace, tmp_path / "vmi.yaml", with_line(f"    ioThreadsPolicy: {value}")
    )
    words = f"json: unsupported value: {shown}"
    assert code != 0 and f"error converting YAML to JSON: {words}" in stderr
    assert f"spec.domain.ioThreadsPolicy: {shown} is not a number JSON can hold" in error
    assert words in error


def test_a_second_metadata_is_last_wins_for_kubectl_and_refused_by_validate(
    apiserver: ApiServer, namespace: str, tmp_path: Path
) -> None:
    error, (code, _) = both(
        apiserver, namespace, tmp_path / "vmi.yaml", EXAMPLE + "metadata:\n  name: plain\n"
    )
    assert 'not valid YAML: mapping key "metadata" already defined at line 6' in error
    assert code == 0  # kubectl created it ...
    stored = apiserver.get("vmi", "plain", namespace=namespace)
    assert ENABLED not in stored["metadata"].get("labels", {})  # ... as a plain VMI


def test_a_json_member_given_twice_is_last_wins_for_kubectl_and_refused_by_validate(
    apiserver: ApiServer, namespace: str, tmp_path: Path
) -> None:
    text = (
        '{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance"'
        ', "metadata": {"name": "twice", "labels": {"cca.kubevirt.io/enabled": "true"}}'
        ', "metadata": {"name": "twice"}, "spec": {"domain": {"devices": {}}}}'
    )
    error, (code, _) = both(apiserver, namespace, tmp_path / "vmi.json", text)
    assert "not valid JSON: the member 'metadata' is given more than once" in error
    assert code == 0
    stored = apiserver.get("vmi", "twice", namespace=namespace)
    assert ENABLED not in stored["metadata"].get("labels", {})


def test_an_integer_too_long_to_read(apiserver: ApiServer, namespace: str, tmp_path: Path) -> None:
    digits = "9" * 5000
    error, (code, stderr) = both(
        apiserver, namespace, tmp_path / "vmi.yaml", with_line("    cpu: {cores: " + digits + "}")
    )
    assert "spec.domain.cpu.cores: an integer of 5000 digits is too long to read" in error
    assert code != 0 and "spec.domain.cpu.cores in body must be of type integer" in stderr
