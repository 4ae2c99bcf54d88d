#!/usr/bin/env python3
"""``helm`` for the Helm lane: Helm v4's own Go SDK (helm-python-sdk), behind helm's command lines.

scripts/helm-setup.sh installs the SDK into a cache folder (the Go module proxy that
``go install helm.sh/helm/v4/cmd/helm`` needs is not reachable from this workplace;
docs/development.md, "The Helm lane"). This script gives the tests the few helm commands they
use, with helm's own flags, so the same tests run unchanged through a real ``helm`` binary
(KUBEVIRT_CCA_HELM=/path/to/helm). Every decision (values coalescing, the schema check,
rendering, the install order, the release records, the three-way merge of an upgrade,
uninstall) is the SDK's, that is Helm's; this file only parses arguments and prints.

    helm.py version
    helm.py lint CHART [--strict] [-f VALUES]... [--set K=V]...
    helm.py template NAME CHART [-n NS] [-f VALUES]... [--set K=V]...
    helm.py install|upgrade NAME CHART [-n NS] [--kubeconfig F] [-f VALUES]... [--set K=V]...
    helm.py uninstall NAME [-n NS] [--kubeconfig F]
    helm.py status NAME [-n NS] [--kubeconfig F]
    helm.py package CHART [-d DIR] [--version V] [--app-version V]

Errors print ``Error: ...`` on stderr and exit 1, as helm does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import helm_python as helm


def _merge(into: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _values(args: argparse.Namespace) -> dict[str, Any]:
    """-f files in order, then --set expressions in order (helm's precedence)."""
    merged: dict[str, Any] = {}
    for name in args.values:
        _merge(merged, helm.values_from_yaml(Path(name).read_text(encoding="utf-8")))
    for expression in args.set:
        _merge(merged, helm.parse_set_string(expression))
    return merged


def _config(args: argparse.Namespace) -> helm.Config:
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    return helm.Config(kubeconfig_path=kubeconfig, namespace=args.namespace)


def _release(release: dict[str, Any]) -> None:
    for field in ("name", "namespace", "status", "revision"):
        print(f"{field.upper()}: {release.get(field)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helm")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version")

    def with_values(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-f", "--values", action="append", default=[])
        sub.add_argument("--set", action="append", default=[])

    def with_cluster(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-n", "--namespace", default="default")
        sub.add_argument("--kubeconfig")

    lint = commands.add_parser("lint")
    lint.add_argument("chart")
    lint.add_argument("--strict", action="store_true")
    with_values(lint)
    template = commands.add_parser("template")
    template.add_argument("name")
    template.add_argument("chart")
    template.add_argument("-n", "--namespace", default="default")
    with_values(template)
    for name in ("install", "upgrade"):
        sub = commands.add_parser(name)
        sub.add_argument("name")
        sub.add_argument("chart")
        with_values(sub)
        with_cluster(sub)
    for name in ("uninstall", "status"):
        sub = commands.add_parser(name)
        sub.add_argument("name")
        with_cluster(sub)
    package = commands.add_parser("package")
    package.add_argument("chart")
    package.add_argument("-d", "--destination", default=".")
    package.add_argument("--version")
    package.add_argument("--app-version")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "version":
        print(f"{helm.helm_sdk_version()} (Helm SDK, helm-python-sdk {helm.__version__})")
        return 0
    if args.command == "lint":
        report = helm.lint(args.chart, _values(args), strict=args.strict)
        for message in report.get("messages", []):
            level = {1: "INFO", 2: "WARNING", 3: "ERROR"}.get(message.get("severity"), "ERROR")
            print(f"[{level}] {message.get('path')}: {message.get('error')}")
        failed = report.get("errors") or [
            m
            for m in report.get("messages", [])
            if m.get("severity", 3) >= (2 if args.strict else 3)
        ]
        print(f"1 chart(s) linted, {1 if failed else 0} chart(s) failed")
        return 1 if failed else 0
    if args.command == "template":
        # `helm template` is a client-side dry-run install (helm's own cmd/helm/template.go).
        release = helm.Config(namespace=args.namespace).install(
            args.chart, args.name, _values(args), namespace=args.namespace, dry_run="client"
        )
        sys.stdout.write(release["manifest"])
        return 0
    if args.command in ("install", "upgrade"):
        action = getattr(_config(args), args.command)
        _release(action(args.chart, args.name, _values(args), namespace=args.namespace))
        return 0
    if args.command == "uninstall":
        _config(args).uninstall(args.name)
        print(f'release "{args.name}" uninstalled')
        return 0
    if args.command == "status":
        _release(_config(args).status(args.name))
        return 0
    path = helm.package(
        args.chart, destination=args.destination, version=args.version, app_version=args.app_version
    )
    print(f"Successfully packaged chart and saved it to: {path}")
    return 0


def main() -> int:
    args = _parser().parse_args()
    try:
        return run(args)
    except (helm.HelmError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
