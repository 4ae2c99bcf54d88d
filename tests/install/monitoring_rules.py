"""The metric names the monitoring rules reference, read from the rules as rendered.

The names come out of the PromQL text itself (not from the code that wrote it), so the tests
that scrape the real webhook and labeller check what Prometheus would really evaluate.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from kubevirt_cca.core.install import InstallOptions
from kubevirt_cca.core.install.monitoring import alert_rules

_METRIC = re.compile(r"\b(kubevirt_cca_[a-z0-9_]+)\b")
# Exported by kube-state-metrics from the configuration the install ships, not by our code.
KUBE_STATE_METRICS = frozenset({"kubevirt_cca_vmi_phase"})


def referenced_metrics() -> set[str]:
    return {
        name
        for rule in alert_rules(InstallOptions(monitoring=True))
        for name in _METRIC.findall(rule["expr"])
    }


def labeller_metrics() -> set[str]:
    return {name for name in referenced_metrics() if name.startswith("kubevirt_cca_labeller_")}


def webhook_metrics() -> set[str]:
    return referenced_metrics() - labeller_metrics() - KUBE_STATE_METRICS


def scraped_names(text: str) -> set[str]:
    """Every sample name of a /metrics answer (counters with their ``_total``)."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def scraped_value(text: str, name: str) -> float:
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]
