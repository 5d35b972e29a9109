"""Checking one manifest document against the v1beta1 schema, collecting every issue.

:func:`check_document` walks the loaded data over the schema compiled from the structs
(:mod:`twinplane.manifests.schema`), the way the Kubernetes API server treats a CRD object:

- a missing required field, a wrong JSON type, a value outside an enum or an integer width, a
  property name outside KubeEdge's twin key charset: an **error** naming the path;
- an unknown field: a **warning**, and the field is pruned (as the API server prunes it);
- ``null``: the field is unset (as in Kubernetes);
- the quirks of :mod:`twinplane.manifests.quirks`: read as meant, with a **warning**.

Then KubeEdge's admission rule (property names unique in a Device and in a DeviceModel) and the
CRD's documented rule that method names are unique are applied. Only a document without errors
becomes a typed object.

Fields required beyond the OpenAPI schema are those KubeEdge's Go types document as required and
its code cannot do without (``spec.deviceModelRef``, ``spec.protocol.protocolName``, property and
method names, a model property's ``type`` and ``accessMode``); a device property's ``visitors`` is
optional because a v1.22 model may supply it.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import msgspec

from twinplane.manifests.issues import IssueCode, Note
from twinplane.manifests.legacy import LEGACY_FIELD_NOTES
from twinplane.manifests.paths import Path, format_path, path_pattern
from twinplane.manifests.quirks import (
    cycle_from_nanoseconds,
    integer_from,
    text_from_scalar,
    truth_from_text,
)
from twinplane.manifests.schema import (
    BoolNode,
    FreeNode,
    IntNode,
    ListNode,
    MapNode,
    Node,
    ObjectNode,
    StrNode,
    compile_type,
)
from twinplane.manifests.types import API_VERSION, Manifest

__all__ = ["Checked", "check_document"]

M = TypeVar("M", bound=Manifest)

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_REQUIRED_NOTES: Final[dict[tuple[str, str], str]] = {
    ("", "metadata"): "every object needs metadata.name",
    ("", "metadata.name"): "every object needs a name (generateName is not supported)",
    ("Device", "spec.deviceModelRef"): "a Device names its DeviceModel, in the same namespace",
    ("Device", "spec.deviceModelRef.name"): "a Device names its DeviceModel, in the same namespace",
    ("Device", "spec.protocol"): "EdgeCore routes a Device to the mapper of its protocolName",
    ("Device", "spec.protocol.protocolName"): "EdgeCore routes a Device to this protocol's mapper",
    ("DeviceModel", "spec.protocol"): "EdgeCore sends a DeviceModel to this protocol's mapper",
    ("DeviceModel", "spec.properties[].type"): (
        "one of INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM"
    ),
    ("DeviceModel", "spec.properties[].accessMode"): "ReadWrite or ReadOnly",
}
"""Why a required field is required, by (kind or ``""`` for any kind, path pattern)."""


@dataclass(slots=True)
class Checked(Generic[M]):
    """The outcome of :func:`check_document`: the object when there is no error, and the notes."""

    obj: M | None
    errors: list[Note] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)


class _Invalid:
    """Marks a value that failed its check (it is dropped from the cleaned data)."""


_INVALID: Final = _Invalid()


def check_document(cls: type[M], data: dict[str, Any], *, prefix: Path = ()) -> Checked[M]:
    """Check one document of kind ``cls`` and build the object if it has no error.

    Args:
        cls: :class:`Device`, :class:`DeviceModel` or :class:`DeviceStatus`.
        data: The document (``apiVersion`` and ``kind`` already checked by the caller).
        prefix: Path of the document inside its input (``("items", 2)`` in a ``kind: List``).
    """
    walker = _Walker(cls.KIND, prefix)
    body = {k: v for k, v in data.items() if k not in ("apiVersion", "kind")}
    cleaned = walker.walk(compile_type(cls), body, prefix)
    checked: Checked[M] = Checked(None, walker.errors, walker.warnings)
    if not isinstance(cleaned, dict):
        return checked
    metadata = cleaned.get("metadata")
    if isinstance(metadata, dict):
        metadata.setdefault("namespace", "default")
    checked.errors += _admission(cls.KIND, cleaned, prefix)
    if not checked.errors:
        try:
            checked.obj = msgspec.convert(cleaned, cls)
        except msgspec.ValidationError as exc:  # pragma: no cover - the walker checks the same
            checked.errors.append(Note(prefix, f"invalid: {exc}", "type"))
    return checked


# --- the schema walk --------------------------------------------------------------------------


class _Walker:
    """Walks data over a compiled node tree, returning cleaned data and collecting notes."""

    def __init__(self, kind: str, prefix: Path) -> None:
        self.kind = kind
        self.prefix = prefix
        self.errors: list[Note] = []
        self.warnings: list[Note] = []

    def error(self, path: Path, message: str, code: IssueCode) -> None:
        self.errors.append(Note(path, self._noted(path, message, code), code))

    def warn(self, path: Path, message: str, code: IssueCode) -> None:
        self.warnings.append(Note(path, self._noted(path, message, code), code))

    def _noted(self, path: Path, message: str, code: IssueCode) -> str:
        """Add the v1alpha2 note of this path to a type or unknown-field issue."""
        if code not in ("type", "unknown-field"):
            return message
        note = LEGACY_FIELD_NOTES.get(path_pattern(path[len(self.prefix) :]))
        return f"{message} ({note})" if note else message

    def walk(self, node: Node, value: Any, path: Path) -> Any:  # noqa: ANN401, PLR0911
        if isinstance(node, ObjectNode):
            return self.struct(node, value, path)
        if isinstance(node, StrNode):
            return self.string(node, value, path)
        if isinstance(node, IntNode):
            return self.integer(node, value, path)
        if isinstance(node, BoolNode):
            return self.boolean(value, path)
        if isinstance(node, ListNode):
            return self.array(node, value, path)
        if isinstance(node, MapNode):
            return self.mapping(node, value, path)
        return self.free(node, value, path)

    def struct(self, node: ObjectNode, value: Any, path: Path) -> Any:  # noqa: ANN401
        if not isinstance(value, dict):
            self.error(path, f"expected an object, got {_describe(value)}", "type")
            return _INVALID
        out: dict[str, Any] = {}
        for key, raw in value.items():
            spec = node.fields.get(key) if isinstance(key, str) else None
            if spec is None:
                hint = _did_you_mean(str(key), node.fields)
                self.warn(
                    (*path, str(key)),
                    f"unknown field {str(key)!r} ignored: {self.kind} {API_VERSION} has no such "
                    f"field here{hint}",
                    "unknown-field",
                )
            elif raw is not None:
                cleaned = self.walk(spec.node, raw, (*path, key))
                if cleaned is not _INVALID:
                    out[key] = cleaned
        for key, spec in node.fields.items():
            if spec.required and value.get(key) is None:
                pattern = path_pattern((*path[len(self.prefix) :], key))
                why = _REQUIRED_NOTES.get((self.kind, pattern), _REQUIRED_NOTES.get(("", pattern)))
                self.error((*path, key), "required" + (f": {why}" if why else ""), "required")
        return out

    def string(self, node: StrNode, value: Any, path: Path) -> Any:  # noqa: ANN401
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool | int | float) and _finite(value):
            text = text_from_scalar(value)
            self.warn(
                path,
                f"{value!r} read as the string {text!r} (the schema wants a string: quote it)",
                "coerced",
            )
        else:
            self.error(path, f"expected a string, got {_describe(value)}", "type")
            return _INVALID
        if node.enum is not None and text not in node.enum:
            match = next((e for e in node.enum if e.lower() == text.strip().lower()), None)
            if match is None:
                allowed = ", ".join(node.enum)
                self.error(path, f"{text!r} is not one of {allowed}", "enum")
                return _INVALID
            self.warn(
                path, f"{text!r} read as {match!r} (enum values are case-sensitive)", "coerced"
            )
            text = match
        if node.max_length is not None and len(text) > node.max_length:
            why = f" ({node.why})" if node.why else ""
            self.error(path, f"longer than {node.max_length} characters{why}", "pattern")
            return _INVALID
        if node.pattern is not None and not node.pattern.search(text):
            why = f" ({node.why})" if node.why else ""
            self.error(path, f"{text!r} does not match {node.pattern.pattern}{why}", "pattern")
            return _INVALID
        return text

    def integer(self, node: IntNode, value: Any, path: Path) -> Any:  # noqa: ANN401
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            self.error(path, f"expected an integer, got {_describe(value)}", "type")
            return _INVALID
        if isinstance(value, int):
            number = value
        else:
            parsed = integer_from(value)
            if parsed is None:
                self.error(path, f"expected an integer, got {_describe(value)}", "type")
                return _INVALID
            self.warn(path, f"{value!r} read as the integer {parsed}", "coerced")
            number = parsed
        if not _INT64_MIN <= number <= _INT64_MAX:
            self.error(path, f"{number} does not fit a 64-bit integer", "range")
            return _INVALID
        if node.cycle and (millis := cycle_from_nanoseconds(number)) is not None:
            self.warn(
                path,
                f"{number} looks like nanoseconds (pre-1.18 mapper-framework); read as {millis} ms",
                "nanoseconds",
            )
            number = millis
        if not node.minimum <= number <= node.maximum:
            why = f" ({node.why})" if node.why else ""
            self.error(path, f"{number} is outside [{node.minimum}, {node.maximum}]{why}", "range")
            return _INVALID
        return number

    def boolean(self, value: Any, path: Path) -> Any:  # noqa: ANN401
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and (truth := truth_from_text(value)) is not None:
            self.warn(path, f"{value!r} read as the boolean {str(truth).lower()}", "coerced")
            return truth
        self.error(path, f"expected a boolean (true or false), got {_describe(value)}", "type")
        return _INVALID

    def array(self, node: ListNode, value: Any, path: Path) -> Any:  # noqa: ANN401
        if not isinstance(value, list):
            self.error(path, f"expected an array, got {_describe(value)}", "type")
            return _INVALID
        out: list[Any] = []
        for i, item in enumerate(value):
            if item is None:
                self.error((*path, i), "expected an item, got null", "type")
                out.append(None)
                continue
            cleaned = self.walk(node.item, item, (*path, i))
            out.append(None if cleaned is _INVALID else cleaned)
        return out

    def mapping(self, node: MapNode, value: Any, path: Path) -> Any:  # noqa: ANN401
        if not isinstance(value, dict):
            self.error(path, f"expected an object, got {_describe(value)}", "type")
            return _INVALID
        out: dict[str, Any] = {}
        for key, raw in value.items():
            name = self.key(key, path)
            cleaned = self.walk(node.value, raw, (*path, name))
            if cleaned is not _INVALID:
                out[name] = cleaned
        return out

    def free(self, node: FreeNode, value: Any, path: Path) -> Any:  # noqa: ANN401
        if not isinstance(value, dict):
            self.error(path, f"expected an object, got {_describe(value)}", "type")
            return _INVALID
        out: dict[str, Any] = {}
        for key, raw in value.items():
            name = self.key(key, path)
            spec = node.known.fields.get(name) if node.known is not None else None
            if spec is not None and raw is not None:
                cleaned = self.walk(spec.node, raw, (*path, name))
            else:
                cleaned = self.json_value(raw, (*path, name))
            if cleaned is not _INVALID:
                out[name] = cleaned
        return out

    def json_value(self, value: Any, path: Path) -> Any:  # noqa: ANN401
        """Check a free-form value is plain JSON (YAML can hold more: bytes, NaN)."""
        if isinstance(value, dict):
            return {
                (name := self.key(k, path)): self.json_value(v, (*path, name))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.json_value(v, (*path, i)) for i, v in enumerate(value)]
        if value is None or isinstance(value, str | bool | int) or _finite(value):
            return value
        self.error(path, f"not a JSON value: {_describe(value)}", "type")
        return _INVALID

    def key(self, key: object, path: Path) -> str:
        if isinstance(key, str):
            return key
        name = text_from_scalar(key) if isinstance(key, bool | int | float) else str(key)
        self.warn((*path, name), f"key {key!r} read as the string {name!r}", "coerced")
        return name


def _finite(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _describe(value: object) -> str:
    if value is None or isinstance(value, bool):
        return "null" if value is None else f"the boolean {str(value).lower()}"
    if isinstance(value, int | float | str):
        return f"the {'string' if isinstance(value, str) else 'number'} {value!r}"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    return type(value).__name__


def _did_you_mean(key: str, known: dict[str, Any]) -> str:
    same_case = [k for k in known if k.lower() == key.lower()]
    close = same_case or difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- admission --------------------------------------------------------------------------------


def _admission(kind: str, cleaned: dict[str, Any], prefix: Path) -> list[Note]:
    """KubeEdge's admission rule: unique property names; and unique method names."""
    spec = cleaned.get("spec")
    if kind not in ("Device", "DeviceModel") or not isinstance(spec, dict):
        return []
    notes = _unique(spec.get("properties"), (*prefix, "spec", "properties"), "property")
    if kind == "Device":
        notes += _unique(spec.get("methods"), (*prefix, "spec", "methods"), "method")
    return notes


def _unique(items: object, path: Path, what: str) -> list[Note]:
    seen: dict[str, int] = {}
    notes: list[Note] = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            first = format_path((*path, seen[name]))
            notes.append(
                Note(
                    (*path, i, "name"),
                    f"duplicate {what} name {name!r} (also at {first}): "
                    f"{what} names must be unique",
                    "duplicate",
                )
            )
        else:
            seen[name] = i
    return notes
