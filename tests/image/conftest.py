"""Fixtures of the image lane: the built image, podman runs shaped like deploy/'s pods, and the
real kube-apiserver of ../shared/peers.

The lane skips itself, saying what is missing, where podman or the image is absent (a developer
machine). ``scripts/image-lane-setup.sh`` installs podman and builds the image; CI runs it and
sets ``KUBEVIRT_CCA_IMAGE_REQUIRED=1``, which turns a missing podman or image into a failure, so
CI cannot go green with the lane silently skipped. docs/development.md, "The image lane".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from tests import kube_apiserver

IMAGE = os.environ.get("KUBEVIRT_CCA_IMAGE", "localhost/kubevirt-cca:ci")
REQUIRED = os.environ.get("KUBEVIRT_CCA_IMAGE_REQUIRED") == "1"
# Every container the lane starts carries this label, so a test's clean-up finds its own.
LANE_LABEL = "io.kubevirt-cca.image-lane"


def missing(reason: str) -> NoReturn:
    """Skip (a developer machine) or fail (CI, where the setup script ran) for ``reason``."""
    if REQUIRED:
        pytest.fail(f"KUBEVIRT_CCA_IMAGE_REQUIRED=1 but {reason}")
    pytest.skip(f"{reason}; run scripts/image-lane-setup.sh (as root) to include the image lane")


@pytest.fixture(scope="session")
def image() -> str:
    """The image under test (``$KUBEVIRT_CCA_IMAGE``), present in podman's local storage."""
    if shutil.which("podman") is None:
        missing("podman is not installed")
    done = subprocess.run(
        ["podman", "image", "exists", IMAGE], capture_output=True, timeout=60, check=False
    )
    if done.returncode != 0:
        missing(f"the image {IMAGE} is not in podman's storage")
    return IMAGE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Mount:
    """What stands in for one of the pod's volumes: a host path, or a tmpfs for an emptyDir."""

    source: Path | None  # None: a tmpfs (an emptyDir)
    size: str = "16m"


@dataclass(frozen=True)
class Run:
    """podman's options, and the container's args (they follow the image)."""

    options: list[str]
    args: list[str]

    def command(
        self,
        image: str,
        *,
        name: str | None = None,
        network_host: bool = False,
        detach: bool = True,
    ) -> list[str]:
        extra = ["--name", name] if name else []
        extra += ["--network", "host"] if network_host else []
        extra += ["--detach"] if detach else ["--rm"]
        return ["podman", "run", *extra, *self.options, image, *self.args]


def podman_args(
    container: Mapping[str, Any],
    *,
    pod_security: Mapping[str, Any] | None = None,
    mounts: Mapping[str, Mount],
    env: Mapping[str, str] | None = None,
    args: Sequence[str] | None = None,
) -> Run:
    """``podman run`` options that run ``container`` (a Kubernetes container spec) as a kubelet
    would: its user and group, read-only root without podman's extra tmpfs mounts, its dropped
    capabilities, no privilege escalation, its volumes at their mount paths, its env, its args."""
    security = {**(pod_security or {}), **container.get("securityContext", {})}
    options = ["--label", LANE_LABEL, "--pull", "never"]
    if "runAsUser" in security:
        group = f":{security['runAsGroup']}" if "runAsGroup" in security else ""
        options += ["--user", f"{security['runAsUser']}{group}"]
    if security.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]
    for capability in security.get("capabilities", {}).get("drop", []):
        options += ["--cap-drop", capability]
    for capability in security.get("capabilities", {}).get("add", []):
        options += ["--cap-add", capability]
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    for volume in container.get("volumeMounts", []):
        mount = mounts[volume["name"]]
        target = volume["mountPath"]
        if mount.source is None:
            options += ["--tmpfs", f"{target}:rw,size={mount.size},mode=1777"]
        else:
            mode = "ro" if volume.get("readOnly") else "rw"
            options += ["--volume", f"{mount.source}:{target}:{mode}"]
    for key, value in (env or {}).items():
        options += ["--env", f"{key}={value}"]
    return Run(options, list(args if args is not None else container.get("args", [])))


@dataclass
class Running:
    """A detached container of the lane."""

    name: str

    def logs(self) -> str:
        done = subprocess.run(
            ["podman", "logs", self.name], capture_output=True, text=True, timeout=60, check=False
        )
        return done.stdout + done.stderr

    def stop(self, timeout: int = 20) -> int:
        """SIGTERM (then SIGKILL after ``timeout``); the exit status."""
        subprocess.run(
            ["podman", "stop", "--time", str(timeout), self.name],
            capture_output=True,
            timeout=timeout + 60,
            check=False,
        )
        done = subprocess.run(
            ["podman", "wait", self.name], capture_output=True, text=True, timeout=60, check=False
        )
        return int(done.stdout.strip() or "-1")

    def exit_code(self) -> int | None:
        """The exit status once it stopped, None while it runs."""
        done = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        running, _, code = done.stdout.strip().partition(" ")
        return None if running == "true" else int(code or "-1")


@pytest.fixture
def start(image: str) -> Iterator[Any]:
    """``start(run, network_host=False)``: run the image detached; removed afterwards."""
    started: list[Running] = []

    def run_detached(run: Run, *, network_host: bool = False) -> Running:
        name = f"kubevirt-cca-lane-{os.getpid()}-{len(started)}-{time.monotonic_ns() % 10**6}"
        done = subprocess.run(
            run.command(image, name=name, network_host=network_host),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"podman run failed:\n{done.stderr}"
        running = Running(name)
        started.append(running)
        return running

    yield run_detached
    for running in started:
        subprocess.run(
            ["podman", "rm", "--force", "--time", "5", running.name],
            capture_output=True,
            timeout=120,
            check=False,
        )


def run_once(
    image: str, run: Run, *, network_host: bool = False, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` in the foreground."""
    return subprocess.run(
        run.command(image, network_host=network_host, detach=False),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the real kube-apiserver of ../shared/peers -------------------------------------------------


@dataclass(frozen=True)
class ApiServer:
    """A running kube-apiserver (with etcd) on 127.0.0.1, and an admin kubeconfig for it."""

    run_dir: Path
    url: str
    port: int
    kubeconfig: Path

    def kubectl(self, *argv: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {' '.join(argv)} failed:\n{done.stderr}"
        return done.stdout

    def apply(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(list(objects)))

    def ca_pem(self) -> str:
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        if "certificate-authority" in cluster:
            return Path(cluster["certificate-authority"]).read_text()
        import base64

        return base64.b64decode(cluster["certificate-authority-data"]).decode()

    def service_account(
        self, folder: Path, namespace: str, name: str, *, bound_pod: str | None = None
    ) -> Path:
        """A folder laid out like a pod's service account mount, with a real token."""
        argv = ["create", "token", name, "-n", namespace, "--duration", "1h"]
        if bound_pod is not None:
            argv += ["--bound-object-kind", "Pod", "--bound-object-name", bound_pod]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "token").write_text(self.kubectl(*argv).strip())
        (folder / "ca.crt").write_text(self.ca_pem())
        (folder / "namespace").write_text(namespace)
        for path in (folder, *folder.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        return folder

    def in_cluster_env(self) -> dict[str, str]:
        """What the kubelet puts into every pod's environment to find the API server."""
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def get(self, *argv: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", *argv, "-o", "json"))
        return found


@pytest.fixture(scope="module")
def apiserver() -> Iterator[ApiServer]:
    """The real kube-apiserver from ../shared/peers (skipped with a reason when absent)."""
    reason = kube_apiserver.peers_missing()
    if reason is not None:
        pytest.skip(f"{reason}; the labeller and webhook run against the real kube-apiserver")
    run_dir = Path(tempfile.mkdtemp(prefix="kubevirt-cca-image-apiserver-"))
    try:
        started = kube_apiserver.start(run_dir, unavailable=missing)
        yield ApiServer(
            run_dir=run_dir, url=started.url, port=started.port, kubeconfig=started.kubeconfig
        )
    finally:
        kube_apiserver.stop(run_dir, remove=True)
