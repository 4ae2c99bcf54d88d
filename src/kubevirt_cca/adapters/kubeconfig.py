"""Loading a kubeconfig so that every way it can be unusable is one readable sentence.

lightkube reads a kubeconfig lazily: a YAML typo, a file without ``clusters`` or a
``certificate-authority`` path that does not exist surface later as ``KeyError``,
``yaml`` errors or ``FileNotFoundError`` from ``ssl`` (tracebacks that name no file). Here the
file is read and checked before a client is built: the file itself, the context it selects, and
every file it points at (CA, client certificate and key, token file). Each problem becomes a
:class:`~kubevirt_cca.errors.KubeconfigError` that names the file and what to do; the commands
print it as one line and exit 2 (bad input, nothing was read from the cluster).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import yaml
from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG, KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError

from kubevirt_cca.errors import KubeconfigError

PREFIX = "no usable Kubernetes configuration"
CHOOSE = (
    "give --kubeconfig FILE or --server URL, set $KUBECONFIG, "
    "or run in a pod with a service account"
)


def load_kubeconfig(kubeconfig: str | None) -> KubeConfig:
    """The configuration from ``kubeconfig``, else the pod's service account, else
    ``$KUBECONFIG`` or ``~/.kube/config`` (lightkube's order), checked as the module says."""
    if kubeconfig is None:
        try:
            return KubeConfig.from_service_account()
        except ConfigError:
            kubeconfig = os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
            if os.pathsep in kubeconfig and not Path(kubeconfig).expanduser().is_file():
                # kubectl merges a list of files; lightkube reads one.
                raise _error(
                    f"$KUBECONFIG lists several files ({kubeconfig}); kubevirt-cca reads one",
                    "give --kubeconfig FILE (or set $KUBECONFIG to one file; "
                    "'kubectl config view --flatten' writes the merged configuration as one)",
                ) from None
    config = _read(kubeconfig)
    _check_files(kubeconfig, _selected(kubeconfig, config))
    return config


def _error(message: str, fix: str) -> KubeconfigError:
    return KubeconfigError(f"{PREFIX}: {message}; {fix}", detail=message)


def _read(path: str) -> KubeConfig:
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise _error(f"kubeconfig {path} does not exist", CHOOSE) from exc
    except IsADirectoryError as exc:
        raise _error(f"kubeconfig {path} is a directory, not a file", CHOOSE) from exc
    except OSError as exc:
        raise _error(
            f"kubeconfig {path} cannot be read ({exc.strerror or exc})",
            f"make it readable by this user (ls -l {path}), or {CHOOSE}",
        ) from exc
    except UnicodeDecodeError as exc:
        raise _error(f"kubeconfig {path} is not text ({exc.reason})", CHOOSE) from exc
    fix = f"check it with 'kubectl config view --kubeconfig {path}'"
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _error(f"kubeconfig {path} is not valid YAML{where}", fix) from exc
    if not isinstance(data, dict):
        raise _error(
            f"kubeconfig {path} is not a kubeconfig (expected a mapping with clusters, "
            "contexts and users)",
            fix,
        )
    try:
        return KubeConfig.from_dict(data, fname=file)
    except KeyError as exc:
        raise _error(f"kubeconfig {path} has no {exc.args[0]}", fix) from exc
    except (TypeError, msgspec.ValidationError) as exc:
        raise _error(f"kubeconfig {path} is not a kubeconfig ({exc})", fix) from exc


def _selected(path: str, config: KubeConfig) -> SingleConfig:
    """The context the client will use (the current one), resolved."""
    fix = f"'kubectl config get-contexts --kubeconfig {path}', then 'kubectl config use-context'"
    try:
        single = config.get()
    except ConfigError as exc:
        raise _error(f"kubeconfig {path}: {exc}", fix) from exc
    except KeyError as exc:
        raise _error(
            f"kubeconfig {path}: its current context names {exc.args[0]!r}, "
            "which it does not define",
            fix,
        ) from exc
    if single is None:  # only with a default, which is not given
        raise _error(f"kubeconfig {path} selects no context", fix)
    return single


def _check_files(path: str, single: SingleConfig) -> None:
    """Every file the selected cluster and user point at exists and can be read."""
    cluster = single.context.cluster
    user = single.context.user or ""
    embed_ca = (
        f"kubectl config set-cluster {cluster} --certificate-authority=CA-FILE --embed-certs "
        f"--kubeconfig {path}"
    )
    embed_user = (
        f"kubectl config set-credentials {user} --client-certificate=CERT-FILE "
        f"--client-key=KEY-FILE --embed-certs --kubeconfig {path}"
    )
    referenced: list[tuple[str | None, str, str]] = [
        (single.cluster.certificate_auth, f"cluster {cluster}'s certificate-authority", embed_ca)
    ]
    if single.user is not None:
        referenced += [
            (single.user.client_cert, f"user {user}'s client-certificate", embed_user),
            (single.user.client_key, f"user {user}'s client-key", embed_user),
            (single.user.token_file, f"user {user}'s tokenFile", "correct the path"),
        ]
    for value, what, embed in referenced:
        if not value:
            continue
        file = Path(single.abs_file(value))
        try:
            with file.open("rb"):
                pass
        except FileNotFoundError:
            problem = "does not exist"
        except IsADirectoryError:
            problem = "is a directory, not a file"
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
        else:
            continue
        raise _error(
            f"kubeconfig {path}: {what} {file} {problem}",
            f"correct the path in the kubeconfig, or embed the file: {embed}",
        )
