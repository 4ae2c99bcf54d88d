"""The ``kubevirt-cca`` command: one entry point, one module per subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``handler`` to a function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kubevirt_cca import __version__
from kubevirt_cca.errors import CCAError, KubeconfigError, RequestError

# The subcommands, in the order --help lists them.
COMMANDS = (
    "render",
    "detect",
    "labeller",
    "webhook",
    "validate",
    "convert",
    "hook",
    "attest",
    "manifests",
    "doctor",
    "uninstall",
    "certs",
)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every subcommand, or for ``command`` alone.

    With ``command`` only that subcommand's module is imported, so a long-running command (the
    labeller, the hook) does not carry every other command's libraries in its memory.
    """
    parser = argparse.ArgumentParser(
        prog="kubevirt-cca",
        description="Arm CCA confidential VMs (Realms) on stock KubeVirt.",
        epilog="Run 'kubevirt-cca COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="how much to log on standard error (default: WARNING)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if command is None else (command,):
        module = importlib.import_module(f"kubevirt_cca.cli.{name.replace('-', '_')}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_named_command(arguments))
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
    except KubeconfigError as exc:
        # Bad input: nothing was asked of any cluster.
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
