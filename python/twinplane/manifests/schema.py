"""The schema the validator walks, compiled once from the manifest structs.

:mod:`twinplane.manifests.types` is the one description of the ``v1beta1`` schema; this module
turns a struct type into a tree of :class:`Node` objects (through :mod:`msgspec.inspect`) that
:mod:`twinplane.manifests.validate` walks over the loaded data, collecting every issue instead
of stopping at the first. Compiled trees are cached per type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgspec
import msgspec.inspect as mi

from twinplane.manifests.types import ENUM_ORDERS

__all__ = [
    "BoolNode",
    "FieldNode",
    "FreeNode",
    "IntNode",
    "ListNode",
    "MapNode",
    "Node",
    "ObjectNode",
    "StrNode",
    "compile_type",
]


@dataclass(frozen=True, slots=True)
class StrNode:
    """A string, maybe from a fixed set or matching a pattern."""

    enum: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    max_length: int | None = None
    why: str | None = None


@dataclass(frozen=True, slots=True)
class IntNode:
    """An integer within ``[minimum, maximum]``; ``cycle`` marks a millisecond period."""

    minimum: int
    maximum: int
    cycle: bool = False
    why: str | None = None


@dataclass(frozen=True, slots=True)
class BoolNode:
    """A boolean."""


@dataclass(frozen=True, slots=True)
class ListNode:
    """An array of ``item``."""

    item: Node


@dataclass(frozen=True, slots=True)
class MapNode:
    """An object with free keys and typed values (``additionalProperties``)."""

    value: Node


@dataclass(frozen=True, slots=True)
class FreeNode:
    """A free-form object (``x-kubernetes-preserve-unknown-fields``).

    ``known`` types the keys the schema does name (``Device.status``); others are kept as written.
    """

    known: ObjectNode | None = None


@dataclass(frozen=True, slots=True)
class FieldNode:
    """One field of an object: its node and whether it must be present."""

    node: Node
    required: bool


@dataclass(frozen=True, slots=True)
class ObjectNode:
    """An object with named fields (a struct); other keys are pruned."""

    name: str
    fields: dict[str, FieldNode] = field(default_factory=dict)


Node: TypeAlias = StrNode | IntNode | BoolNode | ListNode | MapNode | FreeNode | ObjectNode
"""A compiled schema node."""


_COMPILED: dict[type[msgspec.Struct], ObjectNode] = {}


def compile_type(tp: type[msgspec.Struct]) -> ObjectNode:
    """Compile a manifest struct type into the node tree the validator walks (cached)."""
    node = _COMPILED.get(tp)
    if node is None:
        info = mi.type_info(tp)
        if not isinstance(info, mi.StructType):  # pragma: no cover - only structs are compiled
            raise TypeError(f"{tp!r} is not a msgspec.Struct")
        node = _COMPILED[tp] = _struct(info)
    return node


def _struct(info: mi.StructType) -> ObjectNode:
    fields = {f.encode_name: FieldNode(_node(f.type), f.required) for f in info.fields}
    return ObjectNode(info.cls.__name__, fields)


def _node(info: mi.Type) -> Node:  # noqa: PLR0911 - one branch per msgspec type
    extra: dict[str, Any] = {}
    while isinstance(info, mi.Metadata):
        extra |= info.extra or {}
        info = info.type
    if isinstance(info, mi.UnionType):  # only `X | None`: null means unset (as in Kubernetes)
        (inner,) = (t for t in info.types if not isinstance(t, mi.NoneType))
        return _node(inner)
    if isinstance(info, mi.StructType):
        return _struct(info)
    if isinstance(info, mi.StrType):
        pattern = re.compile(info.pattern) if info.pattern else None
        return StrNode(None, pattern, info.max_length, extra.get("why"))
    if isinstance(info, mi.LiteralType):
        values = tuple(str(v) for v in info.values)
        ordered = next((o for o in ENUM_ORDERS if sorted(o) == sorted(values)), values)
        return StrNode(ordered)
    if isinstance(info, mi.BoolType):
        return BoolNode()
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else -(2**63)
        high = info.le if info.le is not None else 2**63 - 1
        return IntNode(low, high, bool(extra.get("cycle")), extra.get("why"))
    if isinstance(info, mi.VarTupleType | mi.ListType):
        return ListNode(_node(info.item_type))
    if isinstance(info, mi.DictType):
        if isinstance(info.value_type, mi.AnyType):
            known = extra.get("known")
            return FreeNode(compile_type(known) if known is not None else None)
        return MapNode(_node(info.value_type))
    raise TypeError(f"no schema node for {info!r}")  # pragma: no cover - types.py uses none
