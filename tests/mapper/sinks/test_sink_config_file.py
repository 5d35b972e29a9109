"""Mapper-level sinks from the mapper's config file (its optional ``sinks`` section)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinplane.drivers.virtual import VirtualDriver
from twinplane.errors import SpecError
from twinplane.mapper.app import MapperApp
from twinplane.mapper.config import load_config
from twinplane.mapper.sinks.config import ParquetSinkConfig, PostgresSinkConfig

BASE = "common: {protocol: virtual}\n"


def load(tmp_path: Path, text: str) -> tuple[object, ...]:
    """The sinks of a config file holding ``text`` after a minimal common section."""
    path = tmp_path / "config.yaml"
    path.write_text(BASE + text)
    return load_config(path, home=tmp_path).sinks


def test_sinks_section_yields_postgres_and_parquet_configs(tmp_path: Path) -> None:
    """The keys postgres {dsn, table} and parquet {dir, max_bytes, max_age_s} become configs."""
    sinks = load(
        tmp_path,
        "sinks:\n"
        "  parquet: {dir: /var/lib/tp, max_bytes: 1048576, max_age_s: 60}\n"
        "  postgres:\n"
        "    dsn: postgresql://twinplane@db.local:5432/iot\n"
        "    table: samples\n",
    )
    assert sinks == (
        PostgresSinkConfig("postgresql://twinplane@db.local:5432/iot", "samples"),
        ParquetSinkConfig("/var/lib/tp", max_bytes=1 << 20, max_age_s=60.0),
    )


def test_defaults_and_no_section(tmp_path: Path) -> None:
    """Without the section there are no sinks; absent keys keep the configs' defaults."""
    assert load(tmp_path, "") == ()
    assert load(tmp_path, "sinks: {parquet: {dir: /d}}\n") == (ParquetSinkConfig("/d"),)


def test_app_feeds_the_config_sinks_to_its_data_plane(tmp_path: Path) -> None:
    """MapperApp builds its DataPlane with the config's sinks as extra sinks, the runtime's too."""
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "sinks: {parquet: {dir: /d, max_age_s: 5}}\n")
    cfg = load_config(path, home=tmp_path)
    mapper = MapperApp(cfg, VirtualDriver())
    assert mapper.data_plane.extra == (ParquetSinkConfig("/d", max_age_s=5.0),)
    assert mapper.runtime.data_plane is mapper.data_plane


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("sinks: {influx: {url: x}}\n", "sinks"),
        ("sinks: {parquet: {dir: /d, max_size: 1}}\n", "sinks.parquet.max_size"),
        ("sinks: {parquet: {max_bytes: 1}}\n", "sinks.parquet.dir"),
        ("sinks: {parquet: {dir: /d, max_bytes: big}}\n", "sinks.parquet.max_bytes"),
        ("sinks: {postgres: {dsn: 'postgresql://u:pw@h/db'}}\n", "sinks.postgres"),
        ("sinks: {postgres: {dsn: 'postgresql://u@h/db', table: 'a-b'}}\n", "sinks.postgres"),
        ("sinks: [postgres]\n", "sinks"),
    ],
)
def test_bad_sinks_section_names_the_key(tmp_path: Path, text: str, path: str) -> None:
    """Unknown sinks or keys, wrong types and refused values are SpecErrors naming the path."""
    with pytest.raises(SpecError) as err:
        load(tmp_path, text)
    assert err.value.path == path
