"""Loading manifests: text in, typed objects and every issue out.

:func:`load_documents` never raises for bad content: it returns a :class:`LoadResult` with the
objects of the documents that are valid and every error and warning of all of them, so the REST
API can answer 422 with the whole list. :func:`load_strict` raises :class:`ManifestError`
instead when there is an error.

Each document is dispatched on ``apiVersion`` and ``kind``: ``devices.kubeedge.io/v1beta1``
Device, DeviceModel and DeviceStatus; their typed lists (``DeviceList``...); and ``v1`` ``List``
(what ``kubectl get -o yaml`` prints), whose items are read one by one with paths starting at
``items[i]``. A ``v1alpha1``/``v1alpha2`` document is an error saying what to change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Final

from twinplane.manifests.issues import IssueCode, ManifestError, ManifestIssue, Note
from twinplane.manifests.legacy import LEGACY_VERSIONS, legacy_version_message
from twinplane.manifests.parse import parse_documents
from twinplane.manifests.paths import Path, format_path
from twinplane.manifests.references import reference_issues
from twinplane.manifests.types import (
    API_GROUP,
    API_VERSION,
    KINDS,
    Device,
    DeviceModel,
    DeviceStatus,
    Manifest,
)
from twinplane.manifests.validate import check_document

__all__ = ["LoadResult", "load_documents", "load_file", "load_strict"]

_LIST_KINDS: Final = {f"{kind}List": kind for kind in KINDS}

_LEGACY: Final = frozenset((API_GROUP, version) for version in LEGACY_VERSIONS)


@dataclass(slots=True)
class LoadResult:
    """What :func:`load_documents` read.

    Attributes:
        source: Where the text came from (a file name, ``<input>``...).
        objects: The valid objects, in input order.
        documents: The document index of each object (parallel to ``objects``).
        warnings: Quirks read anyway, unknown fields pruned, and the like.
        errors: Everything that kept a document from loading; empty when all loaded.
    """

    source: str
    objects: list[Manifest] = field(default_factory=list)
    documents: list[int] = field(default_factory=list)
    warnings: list[ManifestIssue] = field(default_factory=list)
    errors: list[ManifestIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors."""
        return not self.errors

    @property
    def devices(self) -> list[Device]:
        """The Devices, in input order."""
        return [o for o in self.objects if isinstance(o, Device)]

    @property
    def models(self) -> list[DeviceModel]:
        """The DeviceModels, in input order."""
        return [o for o in self.objects if isinstance(o, DeviceModel)]

    @property
    def statuses(self) -> list[DeviceStatus]:
        """The DeviceStatuses, in input order."""
        return [o for o in self.objects if isinstance(o, DeviceStatus)]

    def raise_for_errors(self) -> None:
        """Raise :class:`ManifestError` with every error, if there is any.

        Raises:
            ManifestError: The input has errors.
        """
        if self.errors:
            raise ManifestError(self.errors, source=self.source)

    def reference_issues(self, models: Iterable[DeviceModel] = ()) -> list[ManifestIssue]:
        """Check the loaded Devices' references against the loaded models plus ``models``.

        Args:
            models: Models known besides the loaded ones (a registry's); loaded ones win.

        Returns:
            The errors of :func:`~twinplane.manifests.validate_references`, with the document
            index of each Device.
        """
        known = {m.id: m for m in models} | {m.id: m for m in self.models}
        issues: list[ManifestIssue] = []
        for obj, document in zip(self.objects, self.documents, strict=True):
            if isinstance(obj, Device):
                issues += reference_issues(obj, known, document=document)
        return issues


def load_documents(text: str | bytes, *, source: str = "<input>") -> LoadResult:
    """Load Device, DeviceModel and DeviceStatus manifests from YAML or JSON text.

    Args:
        text: One or more documents (``---``-separated YAML, a JSON value or stream, or a
            ``kind: List``); bytes are read as UTF-8.
        source: Where the text came from, for messages.

    Returns:
        The valid objects and every error and warning; nothing is raised for bad content.
    """
    reader = _Reader(LoadResult(source))
    for raw in parse_documents(text):
        if raw.error is not None:
            reader.result.errors.append(_issue(raw.index, "", {}, raw.error))
            continue
        kind, meta = _identity(raw.data)
        reader.result.warnings += [_issue(raw.index, kind, meta, note) for note in raw.notes]
        reader.dispatch(raw.index, raw.data, ())
    return reader.result


def load_strict(text: str | bytes, *, source: str = "<input>") -> LoadResult:
    """Like :func:`load_documents`, but raise when any document has an error.

    Raises:
        ManifestError: Carrying every error (``.issues``), not only the first.
    """
    result = load_documents(text, source=source)
    result.raise_for_errors()
    return result


def load_file(path: str | os.PathLike[str], *, strict: bool = False) -> LoadResult:
    """Load the manifests of one file (YAML or JSON).

    Args:
        path: The file.
        strict: Raise :class:`ManifestError` when there is an error.

    Raises:
        OSError: The file cannot be read.
        ManifestError: ``strict`` and the file has errors.
    """
    data = FilePath(path).read_bytes()
    loader = load_strict if strict else load_documents
    return loader(data, source=os.fspath(path))


@dataclass(slots=True)
class _Reader:
    """Dispatches documents into a :class:`LoadResult`, noting objects seen twice."""

    result: LoadResult
    seen: dict[tuple[str, str], int] = field(default_factory=dict)

    def fail(self, index: int, data: object, path: Path, message: str, code: IssueCode) -> None:
        kind, meta = _identity(data)
        self.result.errors.append(_issue(index, kind, meta, Note(path, message, code)))

    def dispatch(self, index: int, data: object, prefix: Path) -> None:
        """Read one document, or one item of a List, by its apiVersion and kind."""
        if not isinstance(data, dict):
            what = "an array" if isinstance(data, list) else type(data).__name__
            message = f"a manifest must be an object with apiVersion and kind, not {what}"
            self.fail(index, data, prefix, message, "document")
            return
        api_version = data.get("apiVersion")
        kind, _ = _identity(data)
        if not isinstance(api_version, str) or not api_version:
            message = f"required: {API_VERSION} (or v1 for a kind: List)"
            self.fail(index, data, (*prefix, "apiVersion"), message, "required")
        elif not kind:
            message = "required: Device, DeviceModel or DeviceStatus"
            self.fail(index, data, (*prefix, "kind"), message, "required")
        elif (api_version, kind) == ("v1", "List") or (
            api_version == API_VERSION and kind in _LIST_KINDS
        ):
            self.dispatch_list(index, data, prefix)
        elif api_version.rpartition("/")[::2] in _LEGACY:
            message = legacy_version_message(api_version, kind, data)
            self.fail(index, data, (*prefix, "apiVersion"), message, "api-version")
        elif api_version != API_VERSION or kind not in KINDS:
            where = "apiVersion" if api_version != API_VERSION else "kind"
            message = _unsupported(api_version, kind)
            self.fail(index, data, (*prefix, where), message, "api-version")
        else:
            self.load_object(index, data, prefix)

    def dispatch_list(self, index: int, data: dict[str, Any], prefix: Path) -> None:
        """Read the items of a ``List`` (or ``DeviceList``...) one by one."""
        items = data.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            message = "expected an array of objects"
            self.fail(index, data, (*prefix, "items"), message, "document")
            return
        item_kind = _LIST_KINDS.get(str(data.get("kind")))
        for i, item in enumerate(items):
            typed = item
            if item_kind is not None and isinstance(item, dict):  # a typed list may omit them
                typed = {"apiVersion": API_VERSION, "kind": item_kind, **item}
            self.dispatch(index, typed, (*prefix, "items", i))

    def load_object(self, index: int, data: dict[str, Any], prefix: Path) -> None:
        """Check one v1beta1 object and keep it when it has no error."""
        kind, meta = _identity(data)
        checked = check_document(KINDS[kind], data, prefix=prefix)
        self.result.errors += [_issue(index, kind, meta, note) for note in checked.errors]
        self.result.warnings += [_issue(index, kind, meta, note) for note in checked.warnings]
        obj = checked.obj
        if obj is None:
            return
        key = (kind, obj.id)
        if key in self.seen:
            message = f"{kind} {obj.id} is also in document {self.seen[key]}; the last one wins"
            self.result.warnings.append(
                _issue(index, kind, meta, Note(prefix, message, "repeated"))
            )
        self.seen[key] = index
        self.result.objects.append(obj)
        self.result.documents.append(index)


def _unsupported(api_version: str, kind: str) -> str:
    kinds = ", ".join(KINDS)
    return (
        f"apiVersion {api_version!r} kind {kind!r} is not supported: twinplane reads "
        f"{API_VERSION} {kinds} (and their lists, or a v1 List of them)"
    )


def _identity(data: object) -> tuple[str, dict[str, Any]]:
    """The document's kind and metadata, as far as they can be read."""
    if not isinstance(data, dict):
        return "", {}
    kind = data.get("kind")
    meta = data.get("metadata")
    return (kind if isinstance(kind, str) else ""), (meta if isinstance(meta, dict) else {})


def _issue(index: int, kind: str, meta: dict[str, Any], note: Note) -> ManifestIssue:
    name = meta.get("name")
    namespace = meta.get("namespace")
    name = name if isinstance(name, str) else ""
    namespace = namespace if isinstance(namespace, str) and namespace else "default"
    return ManifestIssue(
        document=index,
        kind=kind,
        name=name,
        path=format_path(note.path),
        message=note.message,
        code=note.code,
        namespace=namespace if name else "",
    )
