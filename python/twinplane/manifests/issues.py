"""What is wrong with a manifest, and where: :class:`ManifestIssue` and :class:`ManifestError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import msgspec

from twinplane.errors import SpecError
from twinplane.manifests.paths import Path

__all__ = ["IssueCode", "ManifestError", "ManifestIssue", "Note"]

IssueCode: TypeAlias = Literal[
    "parse",  # not YAML/JSON, or not text
    "document",  # a document that is not an object, or a malformed List
    "api-version",  # unknown or legacy apiVersion / kind
    "required",  # a required field is missing
    "type",  # wrong JSON type
    "enum",  # not one of the allowed values
    "range",  # an integer outside its width or allowed range
    "pattern",  # a name outside its allowed charset
    "duplicate",  # KubeEdge's admission rule: names must be unique
    "reference",  # a model, property or method reference that does not resolve
    "value",  # a desired value that does not fit the model property's type
    "unknown-field",  # (warning) a field the schema does not have; pruned
    "coerced",  # (warning) a quirk read in the schema's type
    "nanoseconds",  # (warning) a pre-1.18 nanosecond cycle read as milliseconds
    "indentation",  # (warning) a document re-indented to parse
    "duplicate-key",  # (warning) a YAML key given twice; the last one wins
    "repeated",  # (warning) the same object twice in one input; the last one wins
    "ignored",  # (warning) a document twinplane reads but does not apply (DeviceStatus)
]
"""A machine-readable class of issue (the REST API returns it beside the message)."""


@dataclass(frozen=True, slots=True)
class Note:
    """An issue before it knows its document: the path as parts, the message, the class."""

    path: Path
    message: str
    code: IssueCode


class ManifestIssue(msgspec.Struct, frozen=True):
    """One error or warning about one manifest document.

    Attributes:
        document: Index of the document in its input (0-based, counting non-empty documents
            separated by ``---``, or JSON values in a stream); ``-1`` for an object that did not
            come from a document (:func:`~twinplane.manifests.validate_references` over a
            registry).
        kind: The document's ``kind`` (``Device``, ...), ``""`` if it has none.
        name: The document's ``metadata.name``, ``""`` if it has none.
        path: The field, e.g. ``spec.properties[1].visitors.configData``; ``""`` for the
            document as a whole. Inside a ``kind: List``, paths start with ``items[i]``.
        message: What is wrong, and how to fix it.
        code: The class of issue.
        namespace: The document's ``metadata.namespace`` (``"default"`` when unset), ``""`` when
            the document has no name.
    """

    document: int
    kind: str
    name: str
    path: str
    message: str
    code: IssueCode = "type"
    namespace: str = ""

    @property
    def object_id(self) -> str:
        """``"<namespace>/<name>"`` of the object, ``""`` when it has no name."""
        if not self.name:
            return ""
        return f"{self.namespace or 'default'}/{self.name}"

    def format(self, *, with_document: bool = True) -> str:
        """Render as ``doc 1 Device default/foo: spec.properties[0].name: message``.

        Args:
            with_document: Start with the document index (left out for ``document == -1``).
        """
        parts: list[str] = []
        if with_document and self.document >= 0:
            parts.append(f"doc {self.document}")
        if self.kind:
            parts.append(self.kind)
        if self.name:
            parts.append(self.object_id)
        head = " ".join(parts)
        where = f"{self.path}: " if self.path else ""
        return f"{head}: {where}{self.message}" if head else f"{where}{self.message}"

    def __str__(self) -> str:
        return self.format()


class ManifestError(SpecError):
    """Manifests that cannot be loaded; ``issues`` holds every error, not only the first.

    Attributes:
        issues: Every error found, in document order.
        source: Where the manifests came from (a file name, ``<input>``...).
    """

    def __init__(self, issues: Sequence[ManifestIssue], *, source: str = "<input>") -> None:
        if not issues:
            raise ValueError("ManifestError needs at least one issue")
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        device = first.object_id if first.kind == "Device" and first.name else None
        super().__init__(f"{source}: {first}{more}", device=device, path=first.path or None)
        self.issues: tuple[ManifestIssue, ...] = tuple(issues)
        self.source = source
