from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportBatch(_message.Message):
    __slots__ = ("seq", "reports")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reports: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, seq: _Optional[int] = ..., reports: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReportError(_message.Message):
    __slots__ = ("index", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: int
    message: str
    def __init__(self, index: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ("seq", "applied", "errors")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    applied: int
    errors: _containers.RepeatedCompositeFieldContainer[ReportError]
    def __init__(self, seq: _Optional[int] = ..., applied: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ReportError, _Mapping]]] = ...) -> None: ...

class CapabilitiesRequest(_message.Message):
    __slots__ = ("mapper",)
    MAPPER_FIELD_NUMBER: _ClassVar[int]
    mapper: str
    def __init__(self, mapper: _Optional[str] = ...) -> None: ...

class CapabilitiesResponse(_message.Message):
    __slots__ = ("fast_path", "max_batch")
    FAST_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    fast_path: bool
    max_batch: int
    def __init__(self, fast_path: _Optional[bool] = ..., max_batch: _Optional[int] = ...) -> None: ...
