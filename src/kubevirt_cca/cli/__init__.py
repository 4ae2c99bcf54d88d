"""The ``kubevirt-cca`` command: one entry point, one module per subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``handler`` to a function taking the parsed arguments and returning the exit code.

The top-level parser is lazy: ``kubevirt-cca --help`` lists the subcommands from
:data:`COMMANDS` (names and one-line help, a static table) and imports none of their modules;
a subcommand's module is imported only when that subcommand is run or its own --help is asked
(docs/performance.md, "The command line"). tests/cli/test_conventions.py keeps the table equal
to what each module registers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kubevirt_cca import __version__
from kubevirt_cca.errors import CCAError, KubeconfigError, RequestError, UsageError

# The subcommands, in the order --help lists them, with the one-line help each registers.
COMMANDS: dict[str, str] = {
    "render": "show the Realm domain XML a VMI would get",
    "detect": "check whether this host can run Realms",
    "labeller": "label this node with its Realm capability (DaemonSet)",
    "webhook": "serve the admission webhooks (HTTPS)",
    "validate": "the admission verdict on a manifest, offline",
    "convert": "rewrite VEP 129 native form into label + annotation",
    "hook": "run the KubeVirt hook sidecar (inside virt-launcher pods)",
    "attest": "collect and verify a Realm's attestation token",
    "manifests": "print the install objects (image, namespace as options)",
    "doctor": "check whether this cluster is ready for Realms",
    "uninstall": "remove kubevirt-cca and its node labels from a cluster",
    "certs": "keep the webhook certificate without cert-manager",
}
# The program name as a kubectl plugin: kubectl runs the kubectl-cca script for 'kubectl cca'.
KUBECTL_PROG = "kubectl cca"

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def build_parser(
    command: str | None = None, *, prog: str = "kubevirt-cca", every: bool = False
) -> argparse.ArgumentParser:
    """The parser with ``command``'s full parser, or (``None``) every subcommand by name only.

    Only ``command``'s module is imported, so a long-running command (the labeller, the hook)
    does not carry every other command's libraries in its memory, and the top-level --help
    costs what one command does. ``every`` registers every subcommand's full parser (tests,
    documentation).
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Arm CCA confidential VMs (Realms) on stock KubeVirt.",
        epilog=f"Run '{prog} COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="how much to log on standard error (default: WARNING)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if every or name == command:
            module = importlib.import_module(f"kubevirt_cca.cli.{name.replace('-', '_')}")
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def kubectl_main() -> int:
    """The ``kubectl-cca`` script: the same command, named as kubectl shows it."""
    return main(prog=KUBECTL_PROG)


def main(argv: Sequence[str] | None = None, *, prog: str = "kubevirt-cca") -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_named_command(arguments), prog=prog)
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        code: int = args.handler(args)
    except RequestError as exc:
        for violation in exc.violations:
            print(f"kubevirt-cca {args.command}: error: {violation}", file=sys.stderr)
        return EXIT_REFUSED
    except (KubeconfigError, UsageError) as exc:
        # Bad input (a flag, or the kubeconfig): nothing was asked of any cluster.
        print(f"kubevirt-cca {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CCAError as exc:
        print(f"kubevirt-cca {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    return code


def _named_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names; ``None`` (build them all) for --help, --version, typos."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--log-level":
            index += 2
        elif arg.startswith("--log-level="):
            index += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg if arg in COMMANDS else None
    return None
