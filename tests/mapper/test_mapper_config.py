"""``twinplane mapper`` configuration: mapper-framework's config.yaml keys and flag overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinplane.cli.main import _build_parser
from twinplane.errors import SpecError
from twinplane.mapper.config import load_config

KUBEEDGE_CONFIG = """\
grpc_server:
  socket_path: /etc/kubeedge/modbus.sock
common:
  name: Modbus-mapper
  version: v1.13.0
  api_version: v1.0.0
  protocol: modbus
  address: 127.0.0.1
  edgecore_sock: /etc/kubeedge/dmi.sock
  http_port: "7778"
dev_init:
  mode: register
"""


def test_kubeedge_users_config_file_is_read(tmp_path: Path) -> None:
    """A mapper-framework config.yaml gives every MapperInfo field and both sockets."""
    path = tmp_path / "config.yaml"
    path.write_text(KUBEEDGE_CONFIG)
    cfg = load_config(path, home=tmp_path)
    assert cfg.protocol == "modbus"
    assert cfg.name == "Modbus-mapper"
    assert (cfg.version, cfg.api_version) == ("v1.13.0", "v1.0.0")
    assert cfg.socket_path == Path("/etc/kubeedge/modbus.sock")
    assert cfg.edgecore_sock == Path("/etc/kubeedge/dmi.sock")
    assert cfg.http_port == 7778


def test_flags_override_the_file(tmp_path: Path) -> None:
    """--protocol, --socket, --edgecore-sock, --name and --http-port win over the file's keys."""
    path = tmp_path / "config.yaml"
    path.write_text(KUBEEDGE_CONFIG)
    cfg = load_config(
        path,
        protocol="virtual",
        socket_path=tmp_path / "m.sock",
        edgecore_sock=tmp_path / "d.sock",
        name="demo",
        http_port=9000,
    )
    assert (cfg.protocol, cfg.name, cfg.http_port) == ("virtual", "demo", 9000)
    assert (cfg.socket_path, cfg.edgecore_sock) == (tmp_path / "m.sock", tmp_path / "d.sock")


def test_defaults_live_under_twinplane_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a file, sockets default to $TWINPLANE_HOME/run/<protocol>.sock and dmi.sock."""
    monkeypatch.setenv("TWINPLANE_HOME", str(tmp_path))
    cfg = load_config(protocol="virtual")
    assert cfg.socket_path == tmp_path / "run" / "virtual.sock"
    assert cfg.edgecore_sock == tmp_path / "run" / "dmi.sock"
    assert (cfg.name, cfg.http_port) == ("virtual-mapper", 7777)


def test_a_protocol_is_required(tmp_path: Path) -> None:
    """The template's empty protocol key is an error naming common.protocol."""
    path = tmp_path / "config.yaml"
    path.write_text("common:\n  protocol:\n  name: x\n")
    with pytest.raises(SpecError) as err:
        load_config(path)
    assert err.value.path == "common.protocol"


def test_cli_accepts_the_kubeedge_deployment_flags(tmp_path: Path) -> None:
    """The Deployment template's `--config-file <file> --v 4` parses."""
    path = str(tmp_path / "config.yaml")
    args = _build_parser().parse_args(["mapper", "--config-file", path, "--v", "4"])
    assert args.config_file == Path(path)
