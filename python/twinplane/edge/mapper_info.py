"""What a mapper registers as (DMI ``MapperInfo``), checked and bounded, and how many may.

Everything a ``MapperRegister`` call brings is kept (in the ``mappers`` table, in metric labels,
as the socket the device manager dials), so each field has a charset and a length, and the
number of mappers a bound: :data:`MAX_MAPPERS`. A refused field is a
:class:`~twinplane.errors.SpecError` whose ``path`` is ``mapper.<field>``; its message quotes the
offending character, or a relative address once its length was checked, never a long input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.errors import SpecError

__all__ = ["MAX_ADDRESS", "MAX_MAPPERS", "MAX_NAME", "MAX_PROTOCOL", "MAX_VERSION", "MapperInfo"]

MAX_MAPPERS: Final = 256
"""Most mappers registered at once; a mapper already registered may always register again."""

MAX_NAME: Final = 63
"""Longest mapper name (a DNS label's length)."""
MAX_PROTOCOL: Final = 63
"""Longest protocol name."""
MAX_VERSION: Final = 64
"""Longest ``version``, ``api_version`` and ``state``."""
MAX_ADDRESS: Final = 107
"""Longest socket path in bytes (``sun_path`` holds 108 with its terminating NUL)."""

_NAME: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_NAME_RULE: Final = (
    "letters, digits, '-' and '.', starting and ending with a letter or digit"
    " (a Kubernetes name; upper case too, as mapper-framework names mappers 'Modbus-mapper')"
)


def _too_long(path: str, size: int, most: int, unit: str = "characters") -> SpecError:
    return SpecError(f"{path}: {size} {unit}, the most is {most}", path=path)


def _bad_char(path: str, text: str, index: int, rule: str) -> SpecError:
    char = text[index]
    shown = f"{char!r} (U+{ord(char):04X})"
    return SpecError(f"{path}: character {index} is {shown}; {rule}", path=path)


def _check_name(name: str) -> None:
    path = "mapper.name"
    if not name:
        raise SpecError(f"{path} must be set", path=path)
    if len(name) > MAX_NAME:
        raise _too_long(path, len(name), MAX_NAME)
    if not _NAME.fullmatch(name):
        bad = next(
            (i for i, c in enumerate(name) if not (c.isascii() and (c.isalnum() or c in ".-"))),
            0 if not name[0].isalnum() else len(name) - 1,
        )
        raise _bad_char(path, name, bad, _NAME_RULE)


def _check_printable(path: str, text: str, most: int, *, spaces: bool = True) -> None:
    """``text`` is at most ``most`` printable ASCII characters (no space unless ``spaces``)."""
    if len(text) > most:
        raise _too_long(path, len(text), most)
    low = " " if spaces else "!"
    for index, char in enumerate(text):
        if not low <= char <= "~":
            rule = "printable ASCII" + ("" if spaces else " without spaces")
            raise _bad_char(path, text, index, f"it must be {rule}")


def _check_address(address: str) -> None:
    path = "mapper.address"
    size = len(address.encode())
    if not address:
        raise SpecError(f"{path} must be set: the path of the mapper's Unix socket", path=path)
    if size > MAX_ADDRESS:
        raise _too_long(path, size, MAX_ADDRESS, "bytes")
    for index, char in enumerate(address):
        if not char.isprintable():
            raise _bad_char(path, address, index, "a socket path has no control characters")
    if not address.startswith("/"):
        raise SpecError(
            f"{path}: {address!r} is not an absolute path: send the mapper's Unix socket as"
            " /path/to/mapper.sock (or unix:///path/to/mapper.sock); the device manager dials"
            " it from its own working directory",
            path=path,
        )


@dataclass(frozen=True, slots=True)
class MapperInfo:
    """A registered mapper; checks its fields (``SpecError`` naming ``mapper.<field>``).

    ``name`` is a Kubernetes-style name (letters of either case, digits, ``-``, ``.``; at most
    63), ``protocol`` 1 to 63 printable ASCII characters without spaces, ``version``,
    ``api_version`` and ``state`` at most 64 printable ASCII characters, ``address`` the
    absolute path of the mapper's Unix socket (at most 107 bytes, no control characters).
    """

    name: str
    protocol: str
    address: str
    version: str = ""
    api_version: str = ""
    state: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.protocol:  # EdgeCore's own words
            raise SpecError(
                f"fail to register mapper {self.name} because the protocol is nil",
                path="mapper.protocol",
            )
        _check_printable("mapper.protocol", self.protocol, MAX_PROTOCOL, spaces=False)
        _check_printable("mapper.version", self.version, MAX_VERSION)
        _check_printable("mapper.api_version", self.api_version, MAX_VERSION)
        _check_printable("mapper.state", self.state, MAX_VERSION)
        _check_address(self.address)

    @classmethod
    def from_dmi(cls, mapper: api_pb2.MapperInfo) -> MapperInfo:
        """The checked fields of a ``MapperRegister`` request's ``mapper``.

        ``address`` is the socket path as bytes (KubeEdge sends it bare); a ``unix://`` or
        ``unix:`` prefix is taken off.

        Raises:
            SpecError: A field is missing, too long or has a character it may not have;
                ``path`` names it (``mapper.address``).
        """
        _check_name(mapper.name)  # first, so that the messages below may name the mapper
        try:
            address = mapper.address.decode()
        except UnicodeDecodeError as err:
            path = "mapper.address"
            raise SpecError(f"{path}: byte {err.start} is not UTF-8", path=path) from None
        return cls(
            name=mapper.name,
            protocol=mapper.protocol,
            address=address.removeprefix("unix://").removeprefix("unix:"),
            version=mapper.version,
            api_version=mapper.api_version,
            state=mapper.state,
        )
