"""Text to documents: YAML or JSON, one document or many.

- JSON: one value, or a stream of values (concatenated or one per line).
- YAML: documents separated by ``---`` (a ``...`` line ends one). Each document is parsed on its
  own, so a syntax error in one does not hide the others, and errors give the line in the whole
  input. Timestamps stay strings (as in Kubernetes, which reads YAML into JSON), a key given twice
  is reported, and a document whose first line lost its indentation is repaired
  (:func:`~twinplane.manifests.quirks.dedent_after_first_line`).

Empty documents are skipped and do not count in the document index. A document whose YAML aliases
expand beyond :data:`MAX_VALUES` values, or which nests deeper than :data:`MAX_DEPTH`, is refused
(a REST API must not be stalled by a "billion laughs" document), and so is one with a string that
is not Unicode text: JSON's ``"\ud800"`` escape decodes to a lone surrogate, which no store or
answer can encode.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import yaml
from yaml.nodes import MappingNode, ScalarNode

from twinplane.manifests.issues import Note
from twinplane.manifests.quirks import dedent_after_first_line

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = ["MAX_DEPTH", "MAX_VALUES", "RawDocument", "parse_documents"]

MAX_VALUES: Final = 1_000_000
"""Most values one document may hold once YAML aliases are expanded."""

MAX_DEPTH: Final = 100
"""Deepest nesting of objects and arrays in one document."""

_MARKER: Final = re.compile(r"(---|\.\.\.)(?=[ \t\r\n]|$)")
_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"


class _Loader(_BaseLoader):
    """PyYAML's safe loader (libyaml when available), minus timestamps, noting repeated keys."""

    repeated_keys: list[tuple[str, int]]

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Construct a mapping, first noting keys written twice in it (merge keys aside)."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.repeated_keys.append((key_node.value, key_node.start_mark.line))
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One document of an input: its data, or why it could not be read.

    Attributes:
        index: Position among the input's non-empty documents (0-based).
        line: First line of the document in the input (1-based).
        data: The parsed value (``None`` when ``error`` is set).
        error: Why the document could not be parsed.
        notes: Warnings from parsing (repaired indentation, repeated keys).
    """

    index: int
    line: int
    data: Any = None
    error: Note | None = None
    notes: tuple[Note, ...] = ()


def parse_documents(text: str | bytes) -> list[RawDocument]:
    """Split and parse ``text`` (YAML or JSON, UTF-8 when bytes) into documents."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            note = Note((), f"not UTF-8 text: {exc.reason} at byte {exc.start}", "parse")
            return [RawDocument(0, 1, error=note)]
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        documents, failed = _json_documents(text)
        if failed is None:
            return documents
        as_yaml = _yaml_documents(text)  # flow-style YAML looks like JSON, too
        if all(d.error is None for d in as_yaml):
            return as_yaml
        return [*documents, failed]
    return _yaml_documents(text)


# --- JSON -------------------------------------------------------------------------------------


def _json_documents(text: str) -> tuple[list[RawDocument], RawDocument | None]:
    """The JSON values of ``text``, and the first one that does not parse, if any."""
    try:
        return [_checked(0, 1, msgspec.json.decode(text))], None
    except (msgspec.DecodeError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    documents: list[RawDocument] = []
    pos = counted = 0
    line = 1
    while (pos := _skip_space(text, pos)) < len(text):
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            where = f"at line {exc.lineno}, column {exc.colno}"
            note = Note((), f"not valid JSON: {exc.msg} {where}", "parse")
            return documents, RawDocument(len(documents), line, error=note)
        except RecursionError:
            note = Note((), f"not valid JSON: nested too deeply at line {line}", "parse")
            return documents, RawDocument(len(documents), line, error=note)
        documents.append(_checked(len(documents), line, value))
    return documents, None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


# --- YAML -------------------------------------------------------------------------------------


def _yaml_documents(text: str) -> list[RawDocument]:
    documents: list[RawDocument] = []
    for start, chunk in _chunks(text):
        parsed = _yaml_chunk(len(documents), start, chunk)
        if parsed is not None:
            documents.append(parsed)
    return documents


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split at ``---`` and ``...`` lines: (first line number, text) of each document."""
    chunks: list[tuple[int, str]] = []
    start, lines, carried = 1, list[str](), list[str]()
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        marker = _MARKER.match(line)
        if marker is None:
            lines.append(line)
            continue
        carried = _flush(chunks, start, lines, carried)
        if marker.group(1) == "---":
            start, lines = number, [line]
        else:
            start, lines = number + 1, []
    _flush(chunks, start, lines, carried)
    return chunks


def _flush(
    chunks: list[tuple[int, str]], start: int, lines: list[str], carried: list[str]
) -> list[str]:
    """Add a chunk; a chunk of directives only (``%YAML``) is carried to the next one."""
    content = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if content and all(ln.startswith("%") for ln in content):
        return carried + lines
    if content:
        chunks.append((start - len(carried), "".join(carried + lines)))
    return []


def _yaml_chunk(index: int, start: int, chunk: str) -> RawDocument | None:
    try:
        data, repeated = _load_yaml(chunk)
    except yaml.YAMLError as exc:
        repaired = dedent_after_first_line(chunk)
        if repaired is not None:
            try:
                data, repeated = _load_yaml(repaired[0])
            except yaml.YAMLError:
                pass
            else:
                message = (
                    f"the first line is flush left but the rest of the document is indented by "
                    f"{repaired[1]} spaces (pasted from an indented block?); read with the rest "
                    f"dedented"
                )
                notes = (Note((), message, "indentation"), *_repeated(repeated, start))
                return _checked(index, start, data, notes) if data is not None else None
        return RawDocument(index, start, error=Note((), _yaml_error(exc, start), "parse"))
    except RecursionError:
        return RawDocument(index, start, error=Note((), "nested too deeply", "parse"))
    if data is None:
        return None
    return _checked(index, start, data, tuple(_repeated(repeated, start)))


def _load_yaml(chunk: str) -> tuple[Any, list[tuple[str, int]]]:
    loader = _Loader(chunk)
    loader.repeated_keys = []
    try:
        return loader.get_single_data(), loader.repeated_keys
    finally:
        loader.dispose()


def _repeated(repeated: list[tuple[str, int]], start: int) -> list[Note]:
    return [
        Note(
            (),
            f"key {key!r} is given twice (line {start + line}); the last value is used",
            "duplicate-key",
        )
        for key, line in repeated
    ]


def _yaml_error(exc: yaml.YAMLError, start: int) -> str:
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML: {exc}"
    mark = exc.problem_mark
    context = ""
    if exc.context:
        context = f" ({exc.context}"
        if exc.context_mark is not None:
            cm = exc.context_mark
            context += f" started at line {start + cm.line}, column {cm.column + 1}"
        context += ")"
    where = f"line {start + mark.line}, column {mark.column + 1}"
    return f"not valid YAML: {exc.problem} at {where}{context}"


# --- size limits ------------------------------------------------------------------------------


def _checked(index: int, line: int, data: Any, notes: tuple[Note, ...] = ()) -> RawDocument:  # noqa: ANN401
    """The document, or an error if it is too big once expanded, too deep, recursive or not text."""
    try:
        _size(data, {}, 0)
    except _RefusedError as exc:
        return RawDocument(index, line, error=Note((), str(exc), "parse"), notes=notes)
    return RawDocument(index, line, data=data, notes=notes)


class _RefusedError(Exception):
    """A document parsed, but not one to take (its message says why)."""


def _size(value: Any, memo: dict[int, int], depth: int) -> int:  # noqa: ANN401
    """Values in ``value`` once expanded (YAML aliases share objects; ``memo`` counts them once)."""
    if isinstance(value, str):
        _check_text(value)
        return 1
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key in memo:
        if memo[key] < 0:
            raise _RefusedError("a YAML alias refers to itself (a recursive document)")
        return memo[key]
    if depth >= MAX_DEPTH:
        raise _RefusedError(f"nested deeper than {MAX_DEPTH} levels")
    memo[key] = -1
    if isinstance(value, dict):
        for name in value:
            if isinstance(name, str):
                _check_text(name)
    children = value.values() if isinstance(value, dict) else value
    total = 1 + sum(_size(child, memo, depth + 1) for child in children)
    if total > MAX_VALUES:
        raise _RefusedError(f"more than {MAX_VALUES} values once YAML aliases are expanded")
    memo[key] = total
    return total


def _check_text(text: str) -> None:
    """Refuses a string with a lone surrogate (its code point, escaped, in the message)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        point = f"\\u{ord(text[exc.start]):04x}"
        raise _RefusedError(
            f"a string holds the lone surrogate {point} (half of a UTF-16 pair), which is not "
            "Unicode text"
        ) from None
