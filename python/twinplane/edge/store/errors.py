"""The store's errors: one :class:`StoreError` for every failed operation, and a newer schema."""

from __future__ import annotations

from twinplane.errors import TwinplaneError

__all__ = ["StoreError", "StoreVersionError"]


class StoreError(TwinplaneError):
    """A local store operation failed.

    Attributes:
        db_path: The database file.
    """

    def __init__(
        self,
        message: str,
        *,
        db_path: str = "",
        device: str | None = None,
        property: str | None = None,  # noqa: A002 - the domain's own word
    ) -> None:
        super().__init__(message, device=device, property=property)
        self.db_path = db_path


class StoreVersionError(StoreError):
    """The database was written by a newer twinplane; it was left untouched.

    Attributes:
        found: The database's schema version.
        supported: The newest schema version this code knows.
    """

    def __init__(self, message: str, *, db_path: str, found: int, supported: int) -> None:
        super().__init__(message, db_path=db_path)
        self.found = found
        self.supported = supported
