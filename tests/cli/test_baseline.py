"""``twinplane bench imitation-mapper``: the baseline mapper's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinplane.cli import main
from twinplane.cli.baseline import IMITATION_MAPPER
from twinplane.loadtest.baselines import BASELINES, IMITATION


def test_baseline_reports_a_missing_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command takes ``twinplane mapper``'s flags and fails cleanly on a bad file (exit 2)."""
    argv = ["bench", "imitation-mapper", "--config-file", str(tmp_path / "missing.yaml")]
    status = main([*argv, "--http-port", "0", "--log-level", "debug"])
    assert status == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_baseline_refuses_another_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline serves Modbus only: a config of another protocol is a usage error."""
    config = tmp_path / "config.yaml"
    config.write_text("common: {protocol: virtual}\n")
    assert main(["bench", "imitation-mapper", "--config-file", str(config)]) == 2
    assert "modbus only" in capsys.readouterr().err


def test_help_names_the_baseline_for_what_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    """``bench scale --help`` offers each baseline by its name and says what it is."""
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "scale", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert f"--baseline {{{','.join(BASELINES)}}}" in text
    assert "a Python imitation of mapper-framework's design" in text
    assert "not KubeEdge's own code" in text
    assert "kubeedge-style" not in text
    assert IMITATION.command == ("bench", IMITATION_MAPPER)  # what bench scale starts
