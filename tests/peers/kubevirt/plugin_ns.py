"""Run KubeVirt's Plugins client against our plugin socket inside a private mount namespace.

KubeVirt accepts a plugin socket only under ``/var/run/kubevirt-plugin/<plugin>/`` (not a
symlink) and waits up to 30 s for it. The test runs this module as
``unshare -m --propagation private python -m tests.peers.kubevirt.plugin_ns SPEC.json``: it
mounts a tmpfs there (so nothing leaks to the machine), starts ``kubevirt-cca hook
--plugin-socket``, runs each command of the spec, and writes their exit status and stderr to
the spec's ``out`` file. Needs root (unshare + mount).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.peers.kubevirt.support import stop, wait_for_socket

PLUGIN_ROOT = Path("/var/run/kubevirt-plugin")
SOCKET = PLUGIN_ROOT / "kubevirt-cca" / "kubevirt-cca.sock"


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    PLUGIN_ROOT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(PLUGIN_ROOT)], check=True)
    log = Path(spec["hook_log"])
    with log.open("w") as sink:
        hook = subprocess.Popen(
            [spec["cca"], "hook", "--plugin-socket", str(SOCKET)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    results = {}
    try:
        wait_for_socket(SOCKET, hook, log)
        for name, command in spec["commands"].items():
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
            results[name] = {
                "returncode": done.returncode,
                "stderr": done.stderr,
                "stdout": done.stdout,
            }
    finally:
        stop(hook)
    Path(spec["out"]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
