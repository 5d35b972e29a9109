"""The mapper's settings: mapper-framework's ``config.yaml`` keys, overridden by flags.

A KubeEdge user's file works as it is::

    grpc_server:
      socket_path: /etc/kubeedge/modbus.sock
    common:
      name: modbus-mapper
      version: v1.13.0
      api_version: v1.0.0
      protocol: modbus
      address: 127.0.0.1          # parsed but unused, as in mapper-framework
      edgecore_sock: /etc/kubeedge/dmi.sock
      http_port: "7777"

Unknown keys are ignored (mapper-framework's own file carries more sections). Defaults when a key
is absent: ``$TWINPLANE_HOME/run/<protocol>.sock`` and ``$TWINPLANE_HOME/run/dmi.sock``.

twinplane's own optional ``sinks`` section adds mapper-level sinks, fed by every property of
every device (``docs/sinks.md``); being ours, its unknown keys are errors::

    sinks:
      postgres: {dsn: "postgresql://twinplane@db:5432/iot", table: twinplane_samples}
      parquet: {dir: /var/lib/twinplane/history, max_bytes: 67108864, max_age_s: 3600}
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from twinplane.errors import SpecError

if TYPE_CHECKING:
    from twinplane.mapper.sinks.config import SinkConfig

__all__ = ["DEFAULT_HTTP_HOST", "DEFAULT_HTTP_PORT", "MapperConfig", "default_home", "load_config"]

DEFAULT_HTTP_PORT = 7777
"""mapper-framework's REST port when ``common.http_port`` is empty."""

DEFAULT_HTTP_HOST = "127.0.0.1"
"""The REST data API's address unless ``--http-host`` says otherwise."""


def default_home() -> Path:
    """``$TWINPLANE_HOME``, else ``~/.twinplane``."""
    return Path(os.environ.get("TWINPLANE_HOME") or "~/.twinplane").expanduser()


@dataclass(frozen=True, slots=True)
class MapperConfig:
    """Settings of one mapper.

    Attributes:
        protocol: ``MapperInfo.protocol``; must equal the devices' ``protocolName``.
        name: ``MapperInfo.name``.
        version: ``MapperInfo.version``.
        api_version: ``MapperInfo.api_version``.
        socket_path: The mapper's own Unix socket (``DeviceMapperService``), sent as
            ``MapperInfo.address``.
        edgecore_sock: The device manager's DMI socket.
        http_host: Address the REST data API listens on (mapper-framework: every interface).
        http_port: Port of the REST data API (``0`` picks a free one).
        edgecore_compat: The device manager is KubeEdge EdgeCore: at most about one DMI call
            per second in total (EdgeCore's limiter), everything batched; and no twinplane
            ``Methods`` service on the mapper's socket (a plain KubeEdge mapper's surface).
        report_interval_ms: Report tick; ``0`` reports at the shortest collect cycle.
        dmi_concurrency: Most ``ReportDeviceStatus`` calls in flight at once.
        write_attempts: Most attempts per desired value while its write fails transiently
            (a timeout, a lost connection); a refusal by the device is never tried again.
        write_backoff_ms: Wait before a desired value's second attempt (doubling, up to 5 s).
        comm_error_interval_ms: How often counted communication errors are reported to the
            device manager (``TwinStream/ReportCommErrors``).
        sinks: Mapper-level sinks (the file's ``sinks`` section), fed by every property.
        allowed_hosts: Names the REST data API answers to besides its address and loopback
            (``--allowed-host``; :mod:`twinplane.rest.guard`).
    """

    protocol: str
    name: str
    socket_path: Path
    edgecore_sock: Path
    version: str = "v1.0.0"
    api_version: str = "v1.0.0"
    http_port: int = DEFAULT_HTTP_PORT
    http_host: str = DEFAULT_HTTP_HOST
    edgecore_compat: bool = False
    report_interval_ms: int = 0
    dmi_concurrency: int = 8
    write_attempts: int = 3
    write_backoff_ms: int = 200
    comm_error_interval_ms: int = 5000
    sinks: tuple[SinkConfig, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    def with_overrides(self, **overrides: Any) -> MapperConfig:  # noqa: ANN401 - field values
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _section(doc: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{key} must be a mapping", path=path)
    return value


def _text(section: Mapping[str, Any], key: str, path: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(f"{key} must be text", path=path)
    return str(value)


def _port(text: str | None, path: str) -> int | None:
    if text is None:
        return None
    try:
        port = int(text)
    except ValueError:
        raise SpecError(f"http_port {text!r} is not a port number", path=path) from None
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the port range
        raise SpecError(f"http_port {port} is out of range", path=path)
    return port


_SINK_KEYS = {
    "postgres": {"dsn": "dsn", "table": "table"},
    "parquet": {
        "dir": "directory",
        "max_bytes": "max_bytes",
        "max_age_s": "max_age_s",
        "max_files": "max_files",
    },
}


def _sinks(doc: Mapping[str, Any]) -> tuple[SinkConfig, ...]:
    """The ``sinks`` section as sink configs (``postgres`` first, then ``parquet``)."""
    from twinplane.mapper.sinks import config as c  # noqa: PLC0415 - only with a sinks section

    section = _section(doc, "sinks", "sinks")
    for kind in section:
        if kind not in _SINK_KEYS:
            raise SpecError(f"unknown sink {kind!r} (known: postgres, parquet)", path="sinks")
    out: list[SinkConfig] = []
    for kind, cls in (("postgres", c.PostgresSinkConfig), ("parquet", c.ParquetSinkConfig)):
        if kind not in section:
            continue
        path = f"sinks.{kind}"
        values = _section(section, kind, path)
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in _SINK_KEYS[kind]:
                raise SpecError(f"unknown key {key!r} of sink {kind}", path=f"{path}.{key}")
            field = _SINK_KEYS[kind][key]
            kwargs[field] = _sink_value(cls, field, value, f"{path}.{key}")
        first = next(iter(_SINK_KEYS[kind]))
        if first not in values:
            raise SpecError(f"sink {kind} needs {first}", path=f"{path}.{first}")
        try:
            out.append(cls(**kwargs))
        except (TypeError, ValueError) as err:
            raise SpecError(f"sink {kind}: {err}", path=path) from err
    return tuple(out)


def _sink_value(cls: type, field: str, value: object, path: str) -> object:
    """A sink setting checked against its field's type (from the config dataclass)."""
    kind = str({f.name: f.type for f in dataclasses.fields(cls)}[field])
    ok = {"str": str, "int": int, "float": int | float}[kind]
    if isinstance(value, bool) or not isinstance(value, ok):
        raise SpecError(f"{path.rpartition('.')[2]} must be {kind}", path=path)
    return float(value) if kind == "float" else value


def load_config(  # noqa: PLR0913 - one keyword per flag
    path: str | os.PathLike[str] | None = None,
    *,
    protocol: str | None = None,
    socket_path: str | os.PathLike[str] | None = None,
    edgecore_sock: str | os.PathLike[str] | None = None,
    name: str | None = None,
    http_port: int | None = None,
    home: Path | None = None,
) -> MapperConfig:
    """Reads a mapper-framework config file (optional) and applies the flags over it.

    Args:
        path: The YAML file, or ``None`` for flags and defaults only.
        protocol: ``--protocol``.
        socket_path: ``--socket``.
        edgecore_sock: ``--edgecore-sock``.
        name: ``--name``.
        http_port: ``--http-port``.
        home: The state directory of the defaults (``$TWINPLANE_HOME`` when ``None``).

    Raises:
        SpecError: The file is not valid YAML, a key has the wrong shape, or no protocol is
            given anywhere (``path`` names the key).
        OSError: The file cannot be read.
    """
    doc: Mapping[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise SpecError(f"{path}: not valid YAML: {err}", path=str(path)) from err
        if loaded is not None and not isinstance(loaded, Mapping):
            raise SpecError(f"{path}: the config must be a mapping", path=str(path))
        doc = loaded or {}
    grpc_server = _section(doc, "grpc_server", "grpc_server")
    common = _section(doc, "common", "common")
    proto = protocol or _text(common, "protocol", "common.protocol")
    if not proto:
        raise SpecError(
            "no protocol: set common.protocol in the config file or pass --protocol",
            path="common.protocol",
        )
    base = home if home is not None else default_home()
    sock = socket_path or _text(grpc_server, "socket_path", "grpc_server.socket_path")
    edge = edgecore_sock or _text(common, "edgecore_sock", "common.edgecore_sock")
    port = (
        http_port
        if http_port is not None
        else _port(_text(common, "http_port", "common.http_port"), "common.http_port")
    )
    return MapperConfig(
        protocol=proto,
        name=name or _text(common, "name", "common.name") or f"{proto}-mapper",
        version=_text(common, "version", "common.version") or "v1.0.0",
        api_version=_text(common, "api_version", "common.api_version") or "v1.0.0",
        socket_path=Path(sock) if sock else base / "run" / f"{proto}.sock",
        edgecore_sock=Path(edge) if edge else base / "run" / "dmi.sock",
        http_port=DEFAULT_HTTP_PORT if port is None else port,
        sinks=_sinks(doc),
    )
