"""``hook --plugin-socket`` refusals name the option that chose the path (issue 18)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.run import kubevirt_cca


def test_a_file_in_the_way_names_plugin_socket(tmp_path: Path) -> None:
    taken = tmp_path / "cca.sock"
    taken.write_text("not a socket")
    done = kubevirt_cca("hook", "--plugin-socket", str(taken))
    assert done.returncode != 0
    assert f"{taken} exists and is not a socket" in done.stderr
    assert "--plugin-socket" in done.stderr
    assert "--socket-dir" not in done.stderr
    assert "Traceback" not in done.stderr
    assert taken.read_text() == "not a socket"


def test_a_path_too_long_names_plugin_socket(tmp_path: Path) -> None:
    long = tmp_path / ("d" * 120) / "cca.sock"
    done = kubevirt_cca("hook", "--plugin-socket", str(long))
    assert done.returncode != 0
    assert "choose a shorter --plugin-socket" in done.stderr
    assert "--socket-dir" not in done.stderr
