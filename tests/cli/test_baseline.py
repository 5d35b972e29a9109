"""``twinplane bench kubeedge-mapper``: the baseline mapper's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinplane.cli import main


def test_baseline_reports_a_missing_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command takes ``twinplane mapper``'s flags and fails cleanly on a bad file (exit 2)."""
    argv = ["bench", "kubeedge-mapper", "--config-file", str(tmp_path / "missing.yaml")]
    status = main([*argv, "--http-port", "0", "--log-level", "debug"])
    assert status == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_baseline_refuses_another_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline serves Modbus only: a config of another protocol is a usage error."""
    config = tmp_path / "config.yaml"
    config.write_text("common: {protocol: virtual}\n")
    assert main(["bench", "kubeedge-mapper", "--config-file", str(config)]) == 2
    assert "modbus only" in capsys.readouterr().err
