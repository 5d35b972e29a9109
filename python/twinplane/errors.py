"""The twinplane exception tree.

Every error raised by twinplane derives from :class:`TwinplaneError` and carries structured
fields (``device``, ``property``, ``path``) besides its message, so callers can act on an error
without parsing text. The native engine raises these same classes (one conversion table in
``rust/twin-py/src/errors.rs``).
"""

from __future__ import annotations


class TwinplaneError(Exception):
    """Base class of every twinplane error.

    Attributes:
        device: The device id (``<namespace>/<name>``) the error is about, if any.
        property: The property name the error is about, if any.
        path: The field path of a configuration error
            (``spec.properties[1].visitors.configData.offset``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        device: str | None = None,
        property: str | None = None,  # noqa: A002 - the domain's own word
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.device = device
        self.property = property
        self.path = path


class SpecError(TwinplaneError, ValueError):
    """A configuration or manifest value is invalid; ``path`` names the field."""


class UnknownDeviceError(TwinplaneError, LookupError):
    """No device with this id is known."""


class UnknownPropertyError(TwinplaneError, LookupError):
    """The device has no property of this name."""


class FrameError(TwinplaneError, ValueError):
    """A raw device frame does not cover what a property's visitor needs.

    Attributes:
        needed: Bytes the visitor needs.
        got: Bytes the frame holds.
    """

    def __init__(  # noqa: PLR0913 - keyword-only structured fields
        self,
        message: str,
        *,
        device: str | None = None,
        property: str | None = None,  # noqa: A002
        path: str | None = None,
        needed: int = 0,
        got: int = 0,
    ) -> None:
        super().__init__(message, device=device, property=property, path=path)
        self.needed = needed
        self.got = got


class ValueTypeError(TwinplaneError, ValueError):
    """A value does not fit the property's type.

    Attributes:
        expected: The property type (``INT``, ``FLOAT``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        device: str | None = None,
        property: str | None = None,  # noqa: A002
        path: str | None = None,
        expected: str = "",
    ) -> None:
        super().__init__(message, device=device, property=property, path=path)
        self.expected = expected


class VersionConflictError(TwinplaneError):
    """A cloud sync carried a twin version older than the edge's (KubeEdge's sync rule)."""
