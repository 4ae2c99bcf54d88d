"""The image users deploy, run as deploy/ runs it: same user, read-only root, dropped
capabilities, no privilege escalation, the same args (only listening ports swapped for free
ones, as the containers share the host's network here) and the same volumes.

docs/development.md, "The image lane"; scripts/image-lane-setup.sh builds the image.
"""

from __future__ import annotations

import base64
import copy
import http.client
import io
import json
import shutil
import ssl
import stat
import subprocess
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubevirt_cca.cli import main
from kubevirt_cca.constants import HOOK_SOCKET_DIR, HOOK_SOCKET_NAME, PLUGIN_SOCKET
from kubevirt_cca.core.admission.launcher_pod import plugin_container
from kubevirt_cca.core.admission.sidecar_entry import hook_entry
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.hookproto import api_info_pb2, api_info_pb2_grpc
from tests.admission.helpers import KUBEVIRT_CR, labelled, review
from tests.conftest import shared_path
from tests.image.conftest import (
    ApiServer,
    Mount,
    Run,
    Running,
    free_port,
    podman_args,
    run_once,
)
from tests.peers.binaries import unpack
from tests.webhook.certs import serving_pair
from tests.webhook.cluster import VMI

pytestmark = pytest.mark.image

Start = Callable[..., Running]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE = "arm-image-lane"
QEMU_UID = 107
# Bounded waits: every loop below gives up after this many seconds.
WAIT_SECONDS = 60


def _objects(image: str) -> list[dict[str, Any]]:
    return install_objects(InstallOptions(image=image))


def _workload(image: str, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod-level securityContext and the first container of deploy/'s ``kind``."""
    obj = next(o for o in _objects(image) if o["kind"] == kind)
    pod = obj["spec"]["template"]["spec"]
    return pod.get("securityContext", {}), copy.deepcopy(pod["containers"][0])


def _swap(args: list[str], flag: str, value: str) -> list[str]:
    index = args.index(flag)
    return [*args[: index + 1], value, *args[index + 2 :]]


def _with_service_account(container: dict[str, Any]) -> dict[str, Any]:
    """The container with the service account mount the kubelet adds to every pod."""
    mounts = [
        *container.get("volumeMounts", []),
        {"name": "service-account", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
    ]
    return {**container, "volumeMounts": mounts}


def _until(check: Callable[[], Any], what: str, running: Running | None = None) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if running is not None and running.exit_code() is not None:
            pytest.fail(f"the container stopped before {what}:\n{running.logs()}")
        time.sleep(0.2)
    pytest.fail(
        f"no {what} within {WAIT_SECONDS} s"
        + (f":\n{running.logs()}" if running is not None else "")
    )


def _http_status(port: int, path: str) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _checkout_cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(list(argv)) == 0, err.getvalue()
    return out.getvalue()


def _shared_dir(tmp_path: Path, name: str) -> Path:
    """A host folder the container's user may write (an emptyDir is world-writable too)."""
    folder = tmp_path / name
    folder.mkdir()
    folder.chmod(0o777)
    return folder


# --- manifests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--certificates", "self-signed"]])
def test_manifests_in_the_image_prints_what_the_checkout_prints(
    image: str, extra: list[str]
) -> None:
    argv = [
        "manifests",
        "--image",
        "registry.example/kubevirt-cca:9.9",
        "--virt-launcher-image",
        "registry.example/kubevirt/virt-launcher:v1.8.0",
        *extra,
    ]
    done = run_once(image, Run(["--read-only", "--cap-drop", "ALL"], argv))
    assert done.returncode == 0, done.stderr
    assert done.stdout == _checkout_cli(*argv)


def test_the_runtime_environment_has_no_pip_and_no_setuptools(image: str) -> None:
    code = (
        "import importlib.util as u, sys; "
        "print(sys.prefix, [m for m in ('pip', 'setuptools') if u.find_spec(m)])"
    )
    done = run_once(image, Run(["--entrypoint", "python"], ["-c", code]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["/opt/kubevirt-cca", "[]"]


# --- detect as a user without a home, read-only root -------------------------------------------


def test_detect_runs_as_the_non_root_user_on_a_read_only_root(image: str) -> None:
    """As user 65532 (the image's default) with podman's read-only root: virsh gets a writable
    HOME (/tmp), so the answer is libvirt's own (no daemon here), not a file-system error."""
    done = run_once(
        image, Run(["--read-only", "--cap-drop", "ALL"], ["detect", "--output", "json"])
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    [libvirt_reason] = [r for r in report["reasons"] if r.startswith("libvirt's domain")]
    assert "virsh domcapabilities" in libvirt_reason
    assert "Read-only file system" not in done.stdout + done.stderr
    assert "runtime directory" not in done.stdout + done.stderr


def test_detect_with_a_domcaps_file_as_the_non_root_user(image: str, tmp_path: Path) -> None:
    source = shared_path("fixtures", "kubevirt", "domcapabilities", "aarch64-cca.xml")
    folder = tmp_path / "domcaps"
    folder.mkdir()
    shutil.copy(source, folder / "domcaps.xml")
    (folder / "domcaps.xml").chmod(0o644)
    done = run_once(
        image,
        Run(
            [
                "--read-only",
                "--read-only-tmpfs=false",
                "--cap-drop",
                "ALL",
                "--volume",
                f"{folder}:/domcaps:ro",
            ],
            ["detect", "--output", "json", "--domcaps", "/domcaps/domcaps.xml"],
        ),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["capable"] is True


def test_the_kernel_log_probe_says_why_it_cannot_read_kmsg(image: str) -> None:
    """As the labeller runs (root without capabilities, the host's / read-only at /host): where
    kernel.dmesg_restrict=1, /dev/kmsg refuses, and the report says so instead of failing."""
    if Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() != "1":
        pytest.skip("kernel.dmesg_restrict is 0 on this machine: /dev/kmsg is readable")
    pod, container = _workload(image, "DaemonSet")
    run = podman_args(
        container,
        pod_security=pod,
        mounts={"host": Mount(Path("/")), "domcapabilities": Mount(None), "tmp": Mount(None)},
        args=["detect", "--output", "json", "--root", "/host"],
    )
    done = run_once(image, run)
    assert done.returncode in (0, 1), done.stderr
    notes = json.loads(done.stdout)["evidence"]["host"]["notes"]
    [kmsg] = [n for n in notes if n.startswith("could not read /dev/kmsg")]
    assert "kernel.dmesg_restrict=1" in kmsg and "CAP_SYSLOG" in kmsg


# --- the hook sidecar and the plugin container ---------------------------------------------------


def _sidecar_container(image: str) -> dict[str, Any]:
    """Our hookSidecars entry as KubeVirt runs it in a non-root virt-launcher pod: as qemu
    (107), no privilege escalation, no capabilities, the hook socket folder mounted."""
    entry = hook_entry(Settings(), image)
    return {
        "image": entry["image"],
        "args": entry["args"],
        "securityContext": {
            "runAsUser": QEMU_UID,
            "runAsGroup": QEMU_UID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "hook-sidecar-sockets", "mountPath": HOOK_SOCKET_DIR}],
    }


def test_the_hook_sidecar_as_qemu_answers_info_and_removes_its_socket_on_sigterm(
    image: str, start: Start, tmp_path: Path
) -> None:
    sockets = _shared_dir(tmp_path, "hooks")
    running = start(
        podman_args(_sidecar_container(image), mounts={"hook-sidecar-sockets": Mount(sockets)})
    )
    socket_path = sockets / HOOK_SOCKET_NAME
    _until(lambda: socket_path.is_socket(), f"socket {socket_path}", running)
    assert socket_path.stat().st_uid == QEMU_UID
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        info = api_info_pb2_grpc.InfoStub(channel).Info(api_info_pb2.InfoParams(), timeout=10)
    assert info.name == "kubevirt-cca"
    assert "v1alpha3" in info.versions
    assert "OnDefineDomain" in [p.name for p in info.hookPoints]
    assert running.stop() == 0, running.logs()
    assert not socket_path.exists()


def test_the_plugin_container_creates_its_socket_with_the_documented_mode(
    image: str, start: Start, tmp_path: Path
) -> None:
    # The Plugins path takes the qemu-commandline dialect (docs/plugins.md).
    container = plugin_container(Settings(dialect=Dialect.QEMU_COMMANDLINE), image)
    sockets = _shared_dir(tmp_path, "plugin")
    running = start(podman_args(container, mounts={"kubevirt-plugin-sockets": Mount(sockets)}))
    socket_path = sockets / Path(PLUGIN_SOCKET).name
    _until(lambda: socket_path.is_socket(), f"socket {socket_path}", running)
    info = socket_path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o660  # docs/plugins.md
    assert (info.st_uid, info.st_gid) == (QEMU_UID, QEMU_UID)
    assert running.stop() == 0, running.logs()
    assert not socket_path.exists()


# --- the webhook and the labeller against the real kube-apiserver -------------------------------


@pytest.fixture(scope="module")
def installed(apiserver: ApiServer, image: str) -> ApiServer:
    """The API server with what deploy/ installs that needs no kubelet (namespace, settings,
    accounts, roles, the labeller's node policy), KubeVirt's CRD and a KubeVirt CR."""
    wanted = {
        "Namespace",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    }
    objects = [
        o
        for o in _objects(image)
        if o["kind"] in wanted
        or o["metadata"]["name"].startswith("kubevirt-cca-labeller-node-restriction")
    ]
    kubevirt_namespace = KUBEVIRT_CR["metadata"]["namespace"]
    apiserver.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": kubevirt_namespace}}]
    )
    apiserver.apply(objects)
    peers_bin = unpack("kubevirt-api-peer-v1.9.0")
    crds = subprocess.run(
        [f"{peers_bin}/kubevirt-api-peer-v1.9.0", "crds", "-kinds", "KubeVirt"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    apiserver.kubectl("create", "-f", "-", stdin=crds)

    def established() -> bool:
        crd = apiserver.get("crd", "kubevirts.kubevirt.io")
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in crd.get("status", {}).get("conditions") or []
        )

    _until(established, "Established KubeVirt CRD")
    apiserver.apply([KUBEVIRT_CR])
    return apiserver


def test_the_webhook_answers_a_real_admission_review_over_tls_and_its_health(
    image: str, installed: ApiServer, start: Start, tmp_path: Path
) -> None:
    pod, container = _workload(image, "Deployment")
    pair = serving_pair()
    tls = tmp_path / "tls"
    tls.mkdir()
    pair.write(tls / "tls.crt", tls / "tls.key")
    for path in (tls, *tls.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    account = installed.service_account(tmp_path / "sa", "kubevirt-cca", "kubevirt-cca-webhook")
    port, health = free_port(), free_port()
    args = _swap(_swap(container["args"], "--port", str(port)), "--health-port", str(health))
    running = start(
        podman_args(
            _with_service_account(container),
            pod_security=pod,
            args=args,
            env=installed.in_cluster_env(),
            mounts={"tls": Mount(tls), "tmp": Mount(None), "service-account": Mount(account)},
        ),
        network_host=True,
    )
    _until(lambda: _http_status(health, "/readyz") == 200, "ready webhook", running)
    assert _http_status(health, "/healthz") == 200
    body = review(labelled(VMI))
    context = ssl.create_default_context(cafile=str(tls / "tls.crt"))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        connection.request(
            "POST",
            "/mutate-vmi",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200
    assert answer["response"]["uid"] == body["request"]["uid"]
    assert answer["response"]["allowed"] is True, answer
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert any(op["path"].startswith("/metadata/annotations") for op in patch), patch
    assert running.stop() == 0, running.logs()


def test_the_labeller_labels_its_node_on_the_real_api_server(
    image: str, installed: ApiServer, start: Start, tmp_path: Path
) -> None:
    """The DaemonSet's container with a pod-bound token for its node, reading the domain
    capabilities file the init container would have written, labels that node."""
    pod, container = _workload(image, "DaemonSet")
    installed.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": NODE, "labels": {"kubernetes.io/arch": "arm64"}},
            }
        ]
    )
    pod_name = "kubevirt-cca-labeller-image-lane"
    installed.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": "kubevirt-cca"},
                "spec": {
                    "nodeName": NODE,
                    "serviceAccountName": "kubevirt-cca-labeller",
                    "containers": [{"name": "labeller", "image": image}],
                },
            }
        ]
    )
    account = installed.service_account(
        tmp_path / "sa", "kubevirt-cca", "kubevirt-cca-labeller", bound_pod=pod_name
    )
    domcaps = tmp_path / "domcaps"
    domcaps.mkdir()
    file_name = next(a for a in container["args"] if a.endswith(".xml")).rsplit("/", 1)[-1]
    shutil.copy(
        shared_path("fixtures", "kubevirt", "domcapabilities", "aarch64-cca.xml"),
        domcaps / file_name,
    )
    (domcaps / file_name).chmod(0o644)
    health = free_port()
    args = [a.replace("$(NODE_NAME)", NODE) for a in container["args"]]
    args = _swap(args, "--health-port", str(health))
    running = start(
        podman_args(
            _with_service_account(container),
            pod_security=pod,
            args=args,
            env={"NODE_NAME": NODE, **installed.in_cluster_env()},
            mounts={
                "host": Mount(Path("/")),
                "domcapabilities": Mount(domcaps),
                "tmp": Mount(None),
                "service-account": Mount(account),
            },
        ),
        network_host=True,
    )

    def labelled_node() -> dict[str, Any] | None:
        node = installed.get("node", NODE)
        return node if node["metadata"].get("labels", {}).get("kubevirt.io/cca") else None

    node = _until(labelled_node, f"label kubevirt.io/cca on node {NODE}", running)
    assert node["metadata"]["labels"]["kubevirt.io/cca"] == "true"
    report = json.loads(node["metadata"]["annotations"]["cca.kubevirt.io/detection"])
    assert report["capable"] is True
    assert _until(lambda: _http_status(health, "/readyz") == 200, "ready labeller", running)
    if Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() == "1":
        # Root without CAP_SYSLOG: the kernel log is refused, and the report says why.
        assert any(
            "kernel.dmesg_restrict=1" in note for note in report["evidence"]["host"]["notes"]
        ), report
    assert running.stop() == 0, running.logs()


def test_the_labeller_as_a_non_root_user_asks_virsh_on_a_read_only_root(
    image: str, installed: ApiServer, tmp_path: Path
) -> None:
    """The DaemonSet's container as user 65532 asking virsh itself (the default
    --domcaps-command) instead of reading the file: virsh gets a writable HOME, so the node's
    report carries libvirt's own answer (no daemon here), not a file-system error."""
    pod, container = _workload(image, "DaemonSet")
    node_name = f"{NODE}-nonroot"
    pod_name = "kubevirt-cca-labeller-image-lane-nonroot"
    installed.apply([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name}}])
    installed.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": "kubevirt-cca"},
                "spec": {
                    "nodeName": node_name,
                    "serviceAccountName": "kubevirt-cca-labeller",
                    "containers": [{"name": "labeller", "image": image}],
                },
            }
        ]
    )
    account = installed.service_account(
        tmp_path / "sa", "kubevirt-cca", "kubevirt-cca-labeller", bound_pod=pod_name
    )
    container["securityContext"] = {
        **container["securityContext"],
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "runAsNonRoot": True,
    }
    args = [a.replace("$(NODE_NAME)", node_name) for a in container["args"]]
    source = args.index("--domcaps-file")
    args = [*args[:source], *args[source + 2 :]]
    health = args.index("--health-port")
    args = [*args[:health], *args[health + 2 :], "--once"]
    done = run_once(
        image,
        podman_args(
            _with_service_account(container),
            pod_security=pod,
            args=args,
            env={"NODE_NAME": node_name, **installed.in_cluster_env()},
            mounts={
                "host": Mount(Path("/")),
                "domcapabilities": Mount(None),
                "tmp": Mount(None),
                "service-account": Mount(account),
            },
        ),
        network_host=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    node = installed.get("node", node_name)
    report = json.loads(node["metadata"]["annotations"]["cca.kubevirt.io/detection"])
    assert report["capable"] is False
    [libvirt_reason] = [r for r in report["reasons"] if r.startswith("libvirt's domain")]
    assert "virsh domcapabilities" in libvirt_reason
    assert "Read-only file system" not in libvirt_reason
    assert "kubevirt.io/cca" not in node["metadata"].get("labels", {})
