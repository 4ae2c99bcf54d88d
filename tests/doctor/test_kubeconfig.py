"""An unusable kubeconfig is one line naming the file and the fix, exit 2, never a traceback.

Through the real command in a subprocess (exit status and standard error as a person sees
them); nothing is asked of any cluster, so no server runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.doctor.cluster import make_ca, pem64

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:6443
    {ca}
users:
- name: admin
  user:
    {user}
contexts:
- name: lab-admin
  context: {{cluster: lab, user: admin}}
current-context: {context}
"""
PREFIX = "kubevirt-cca doctor: error: no usable Kubernetes configuration: "


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubevirt_cca", "doctor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def kubeconfig(
    folder: Path,
    *,
    ca: str = "insecure-skip-tls-verify: true",
    user: str = "token: abc",
    context: str = "lab-admin",
) -> Path:
    path = folder / "config"
    path.write_text(KUBECONFIG.format(ca=ca, user=user, context=context))
    return path


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(PREFIX), lines[0]
    return lines[0][len(PREFIX) :]


def test_a_missing_kubeconfig(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    assert _one_error_line(doctor("--kubeconfig", str(absent))) == (
        f"kubeconfig {absent} does not exist; give --kubeconfig FILE or --server URL, set "
        "$KUBECONFIG, or run in a pod with a service account"
    )


def test_a_missing_kubeconfig_from_the_environment(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    message = _one_error_line(doctor(env={"KUBECONFIG": str(absent)}))
    assert message.startswith(f"kubeconfig {absent} does not exist;")


def test_a_list_of_kubeconfigs_in_the_environment(tmp_path: Path) -> None:
    """kubectl merges $KUBECONFIG=a:b; kubevirt-cca reads one file and says so."""
    listed = f"{kubeconfig(tmp_path)}:{tmp_path / 'other'}"
    assert _one_error_line(doctor(env={"KUBECONFIG": listed})) == (
        f"$KUBECONFIG lists several files ({listed}); kubevirt-cca reads one; give --kubeconfig "
        "FILE (or set $KUBECONFIG to one file; 'kubectl config view --flatten' writes the merged "
        "configuration as one)"
    )


def test_a_directory(tmp_path: Path) -> None:
    message = _one_error_line(doctor("--kubeconfig", str(tmp_path)))
    assert message.startswith(f"kubeconfig {tmp_path} is a directory, not a file;")


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [\n")
    assert _one_error_line(doctor("--kubeconfig", str(path))) == (
        f"kubeconfig {path} is not valid YAML at line 2; check it with 'kubectl config view "
        f"--kubeconfig {path}'"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}\n", "has no clusters"),
        ("- a\n", "is not a kubeconfig (expected a mapping with clusters, contexts and users)"),
        ("clusters: []\n", "has no contexts"),
    ],
)
def test_not_a_kubeconfig(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    message = _one_error_line(doctor("--kubeconfig", str(path)))
    assert message.startswith(f"kubeconfig {path} {problem};"), message


def test_an_unreadable_kubeconfig(tmp_path: Path) -> None:
    # root reads a file whatever its mode: as root, the command runs as nobody (setpriv), on a
    # kubeconfig in a folder nobody may enter, so only the file itself is refused
    folder = tmp_path / "open"
    folder.mkdir()
    for where in (tmp_path, folder):
        where.chmod(0o755)
    path = kubeconfig(folder)
    path.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "util-linux's setpriv (Debian: util-linux) is needed as root"
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "kubevirt_cca", "doctor", "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        # nobody may not write root's coverage data file: no coverage in that one process
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")},
            "HOME": "/tmp",
        },
        timeout=60,
        check=False,
    )
    message = _one_error_line(done)
    assert message == (
        f"kubeconfig {path} cannot be read (Permission denied); make it readable by this user "
        f"(ls -l {path}), or give --kubeconfig FILE or --server URL, set $KUBECONFIG, or run in "
        "a pod with a service account"
    )


def test_a_current_context_that_does_not_exist(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, context="gone")
    message = _one_error_line(doctor("--kubeconfig", str(path)))
    assert message.startswith(f"kubeconfig {path}: Context 'gone' not found;"), message
    assert "kubectl config use-context" in message


def test_a_missing_certificate_authority_file_is_named(tmp_path: Path) -> None:
    """The issue's case: the kubeconfig is fine, the CA file it points at is gone (before,
    ssl raised FileNotFoundError with no file name, in a traceback)."""
    path = kubeconfig(tmp_path, ca="certificate-authority: pki/ca.crt")
    ca = tmp_path / "pki" / "ca.crt"  # relative paths are relative to the kubeconfig
    assert _one_error_line(doctor("--kubeconfig", str(path))) == (
        f"kubeconfig {path}: cluster lab's certificate-authority {ca} does not exist; correct "
        "the path in the kubeconfig, or embed the file: kubectl config set-cluster lab "
        f"--certificate-authority=CA-FILE --embed-certs --kubeconfig {path}"
    )


@pytest.mark.parametrize("key", ["client-certificate", "client-key", "tokenFile"])
def test_a_missing_user_file_is_named(tmp_path: Path, key: str) -> None:
    path = kubeconfig(tmp_path, user=f"{key}: {tmp_path}/gone")
    message = _one_error_line(doctor("--kubeconfig", str(path)))
    assert message.startswith(
        f"kubeconfig {path}: user admin's {key} {tmp_path}/gone does not exist;"
    )


def test_a_certificate_authority_that_is_not_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    path = kubeconfig(tmp_path, ca=f"certificate-authority: {tmp_path}/ca.crt")
    message = _one_error_line(doctor("--kubeconfig", str(path)))
    assert message.startswith("the kubeconfig's certificate or key files do not load ("), message


def test_a_usable_kubeconfig_gets_as_far_as_the_api_server(tmp_path: Path) -> None:
    """The control: a valid kubeconfig with an embedded CA passes the checks and fails only
    where it should, on the unreachable server (exit 1)."""
    ca = make_ca()[0]
    path = kubeconfig(tmp_path, ca=f"certificate-authority-data: {pem64(ca)}")
    path.write_text(path.read_text().replace("127.0.0.1:6443", "127.0.0.1:9"))
    done = doctor("--kubeconfig", str(path))
    assert done.returncode == 1, done
    assert done.stderr.startswith("kubevirt-cca doctor: error: cannot reach the API server")
