"""The optional monitoring objects: Prometheus' own promtool checks the rules and runs their unit
tests (tests/data/monitoring/alerts.test.yaml), every alert links a runbook that exists, the
kustomize part matches ``manifests --monitoring``, and nothing of it is in deploy/ by default."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.cli import main
from kubevirt_cca.core.install import InstallOptions, install_files, install_objects
from kubevirt_cca.core.install.monitoring import (
    KUBE_STATE_METRICS_KEY,
    alert_rules,
    prometheus_rule,
)
from tests.install.monitoring_rules import KUBE_STATE_METRICS, referenced_metrics
from tests.install.support import DEPLOY, by_key, kustomize

ROOT = Path(__file__).resolve().parents[2]
UNIT_TESTS = ROOT / "tests" / "data" / "monitoring" / "alerts.test.yaml"
RUNBOOKS = ROOT / "docs" / "monitoring.md"
MONITORING_KINDS = {"PodMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool not installed (Debian package prometheus; scripts/monitoring-setup.sh)"
        )
    return found


def rules_file(folder: Path) -> Path:
    path = folder / "rules.yaml"
    # The PrometheusRule's groups as the Prometheus rule file promtool reads.
    groups = {"groups": prometheus_rule(InstallOptions(monitoring=True))["spec"]["groups"]}
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_promtool_checks_the_rules(promtool: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules(InstallOptions()))} rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert_pass(promtool: str, tmp_path: Path) -> None:
    rules_file(tmp_path)
    tests = tmp_path / UNIT_TESTS.name
    shutil.copy(UNIT_TESTS, tests)
    result = subprocess.run(
        [promtool, "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_unit_test() -> None:
    """Not only silence: each alert is shown firing with its labels and annotations."""
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert firing == {rule["alert"] for rule in alert_rules(InstallOptions())}


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as '-'."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_a_runbook_section_that_exists() -> None:
    anchors = _anchors(RUNBOOKS.read_text())
    for rule in alert_rules(InstallOptions()):
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/monitoring.md", url
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {path}"


def test_the_kube_state_metrics_configuration_defines_the_metric_the_rules_read() -> None:
    """kube-state-metrics names a custom-resource metric <metricNamePrefix>_<name>."""
    objects = install_files(InstallOptions(monitoring=True))["monitoring/kube-state-metrics.yaml"]
    (config_map,) = objects
    config = yaml.safe_load(config_map["data"][KUBE_STATE_METRICS_KEY])
    assert config["kind"] == "CustomResourceStateMetrics"
    defined = {
        f"{resource['metricNamePrefix']}_{metric['name']}"
        for resource in config["spec"]["resources"]
        for metric in resource["metrics"]
    }
    assert defined == KUBE_STATE_METRICS
    assert referenced_metrics() >= KUBE_STATE_METRICS
    (resource,) = config["spec"]["resources"]
    assert resource["groupVersionKind"]["kind"] == "VirtualMachineInstance"
    assert resource["labelsFromPath"]["cca"] == ["metadata", "labels", "cca.kubevirt.io/enabled"]


def test_monitoring_is_off_by_default_and_added_by_the_flag() -> None:
    code, out, err = run_cli(
        "manifests",
        "--image",
        InstallOptions().image,
        "--virt-launcher-image",
        InstallOptions().virt_launcher_image,
    )
    assert code == 0, err
    plain = [doc for doc in yaml.safe_load_all(out) if doc]
    assert not [o for o in plain if o["kind"] in MONITORING_KINDS]

    code, out, err = run_cli(
        "manifests",
        "--image",
        InstallOptions().image,
        "--virt-launcher-image",
        InstallOptions().virt_launcher_image,
        "--monitoring",
    )
    assert code == 0, err
    printed = [doc for doc in yaml.safe_load_all(out) if doc]
    extra = set(by_key(printed)) - set(by_key(plain))
    assert {key[1] for key in extra} == {"PodMonitor", "PrometheusRule", "ConfigMap"}
    assert by_key(printed) == by_key(
        install_objects(InstallOptions(monitoring=True), load_policies())
    )


def test_the_namespace_option_reaches_the_monitoring_objects() -> None:
    code, out, err = run_cli(
        "manifests",
        "--image",
        InstallOptions().image,
        "--virt-launcher-image",
        InstallOptions().virt_launcher_image,
        "--monitoring",
        "--namespace",
        "cca-ops",
        "--output",
        "json",
    )
    assert code == 0, err
    items = json.loads(out)["items"]
    monitors = [o for o in items if o["kind"] == "PodMonitor"]
    assert len(monitors) == 2
    for obj in monitors:
        assert obj["metadata"]["namespace"] == "cca-ops"
        assert obj["spec"]["namespaceSelector"] == {"matchNames": ["cca-ops"]}
    (rule,) = [o for o in items if o["kind"] == "PrometheusRule"]
    for alert in rule["spec"]["groups"][0]["rules"]:
        if "kubevirt_cca_vmi_phase" not in alert["expr"]:
            assert 'namespace="cca-ops"' in alert["expr"], alert["alert"]


def test_deploy_monitoring_is_its_own_kustomization_not_in_the_base() -> None:
    base = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert "monitoring" not in base["resources"]
    assert not [r for r in base["resources"] if r.startswith("monitoring/")]
    files = install_files(InstallOptions(monitoring=True))
    expected = [
        obj for name, objs in files.items() if name.startswith("monitoring/") for obj in objs
    ]
    assert by_key(kustomize(DEPLOY / "monitoring")) == by_key(expected)


def test_the_pod_monitors_select_the_pods_and_port_that_serve_metrics() -> None:
    objects = install_objects(InstallOptions(monitoring=True))
    workloads = {
        o["metadata"]["name"]: o for o in objects if o["kind"] in {"Deployment", "DaemonSet"}
    }
    for monitor in (o for o in objects if o["kind"] == "PodMonitor"):
        name = monitor["metadata"]["name"]
        pod = workloads[name]["spec"]["template"]
        wanted = monitor["spec"]["selector"]["matchLabels"]
        assert wanted.items() <= pod["metadata"]["labels"].items(), name
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert endpoint["port"] in ports, name
        assert endpoint["path"] == "/metrics"
