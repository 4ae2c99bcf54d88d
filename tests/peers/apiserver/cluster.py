"""A real kube-apiserver + etcd (../shared/peers) for one test session, driven through kubectl.

The binaries are unpacked and started by ``tests/kube_apiserver.py`` (shared with the image
lane): ``apiserver-up.sh`` on random loopback ports, ``apiserver-down.sh`` stops exactly what
was started. No kubelet, scheduler or controller-manager runs: objects are stored and admitted, no
Pod starts, no garbage is collected (docs/testing.md, "The real API server").
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests import kube_apiserver
from tests.conftest import ROOT
from tests.peers.binaries import peers_unavailable

BINARIES = (*kube_apiserver.BINARIES, "kubevirt-api-peer-main")


@dataclass(frozen=True)
class ApiServer:
    """One running API server: where it is and how to reach it as admin, node or anyone."""

    run_dir: Path
    url: str
    bin_dir: Path
    env: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def ca(self) -> Path:
        return self.run_dir / "pki" / "ca.crt"

    @property
    def webhook_cert(self) -> tuple[Path, Path]:
        return self.run_dir / "pki" / "webhook.crt", self.run_dir / "pki" / "webhook.key"

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
            )
        return done

    def create(
        self,
        *objects: dict[str, Any],
        namespace: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl create -f -`` of ``objects``, as a user would."""
        ns = [f"--namespace={namespace}"] if namespace else []
        return self.kubectl(
            "create",
            *ns,
            "-f",
            "-",
            stdin=yaml.safe_dump_all(objects),
            kubeconfig=kubeconfig,
            check=check,
        )

    def get(self, resource: str, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        ns = [f"--namespace={namespace}"] if namespace else []
        done = self.kubectl("get", resource, name, *ns, "-o", "json")
        loaded: dict[str, Any] = json.loads(done.stdout)
        return loaded

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that authenticates with a bearer token (a ServiceAccount's)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "sa",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca)},
                }
            ],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


def start(run_dir: Path) -> ApiServer:
    """Unpack the binaries and start etcd + kube-apiserver in ``run_dir``."""
    started = kube_apiserver.start(run_dir, unavailable=peers_unavailable, binaries=BINARIES)
    return ApiServer(run_dir=run_dir, url=started.url, bin_dir=started.bin_dir, env=started.env)


def stop(run_dir: Path) -> None:
    kube_apiserver.stop(run_dir)


def kubevirt_cca(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real ``kubevirt-cca`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "kubevirt_cca", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Webhook:
    """``kubevirt-cca webhook`` as a local process the API server calls through ``url:``."""

    def __init__(self, server: ApiServer, kubeconfig: Path, log: Path) -> None:
        self.server = server
        self.kubeconfig = kubeconfig
        self.log = log
        self.port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import time
        import urllib.request

        cert, key = self.server.webhook_cert
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubevirt_cca",
                    "--log-level",
                    "INFO",
                    "webhook",
                    "--tls-cert-file",
                    str(cert),
                    "--tls-key-file",
                    str(key),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--health-port",
                    str(self.health_port),
                ],
                cwd=ROOT,
                env={**self.server.env, "KUBECONFIG": str(self.kubeconfig)},
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"webhook exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/readyz", timeout=2
                ) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"webhook not ready after 30 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def clients(self, manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The install objects with only the webhooks' clientConfig pointed at this process."""
        import base64
        import copy

        ca = base64.b64encode(self.server.ca.read_bytes()).decode()
        changed = []
        for obj in manifests:
            obj = copy.deepcopy(obj)
            if obj["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                for hook in obj["webhooks"]:
                    path = hook["clientConfig"]["service"]["path"]
                    hook["clientConfig"] = {
                        "url": f"https://127.0.0.1:{self.port}{path}",
                        "caBundle": ca,
                    }
            changed.append(obj)
        return changed
