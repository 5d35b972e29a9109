"""Field paths as the issues print them: ``spec.properties[1].visitors.configData``."""

from __future__ import annotations

import re
from typing import Final, TypeAlias

__all__ = ["Path", "format_path", "path_pattern"]

Path: TypeAlias = tuple[str | int, ...]
"""A path as parts: object keys and array indices."""

_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(path: Path) -> str:
    """Render ``("spec", "properties", 1, "name")`` as ``spec.properties[1].name``.

    Keys that are not identifier-like are quoted: ``metadata.labels["app.kubernetes.io/name"]``.
    """
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f'["{part}"]')
    return "".join(out)


def path_pattern(path: Path) -> str:
    """The path with indices blanked, ``spec.properties[].name``, to look up per-field notes."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append("[]")
        else:
            out.append(format_path((part,)) if not out else format_path(("x", part))[1:])
    return "".join(out)
