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
    __slots__ = ("fast_path", "max_batch", "write_outcomes", "comm_errors")
    FAST_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    WRITE_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    COMM_ERRORS_FIELD_NUMBER: _ClassVar[int]
    fast_path: bool
    max_batch: int
    write_outcomes: bool
    comm_errors: bool
    def __init__(self, fast_path: _Optional[bool] = ..., max_batch: _Optional[int] = ..., write_outcomes: _Optional[bool] = ..., comm_errors: _Optional[bool] = ...) -> None: ...

class WriteOutcome(_message.Message):
    __slots__ = ("device_namespace", "device_name", "property", "value", "ok", "reason", "attempts", "time_ms")
    DEVICE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    device_namespace: str
    device_name: str
    property: str
    value: str
    ok: bool
    reason: str
    attempts: int
    time_ms: int
    def __init__(self, device_namespace: _Optional[str] = ..., device_name: _Optional[str] = ..., property: _Optional[str] = ..., value: _Optional[str] = ..., ok: _Optional[bool] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class WriteOutcomes(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[WriteOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[WriteOutcome, _Mapping]]] = ...) -> None: ...

class WriteOutcomesAck(_message.Message):
    __slots__ = ("applied", "ignored")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    applied: int
    ignored: int
    def __init__(self, applied: _Optional[int] = ..., ignored: _Optional[int] = ...) -> None: ...

class CommError(_message.Message):
    __slots__ = ("device_namespace", "device_name", "kind", "code", "message", "count", "first_ms", "last_ms")
    DEVICE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_MS_FIELD_NUMBER: _ClassVar[int]
    device_namespace: str
    device_name: str
    kind: str
    code: int
    message: str
    count: int
    first_ms: int
    last_ms: int
    def __init__(self, device_namespace: _Optional[str] = ..., device_name: _Optional[str] = ..., kind: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., count: _Optional[int] = ..., first_ms: _Optional[int] = ..., last_ms: _Optional[int] = ...) -> None: ...

class CommErrors(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[CommError]
    def __init__(self, errors: _Optional[_Iterable[_Union[CommError, _Mapping]]] = ...) -> None: ...

class CommErrorsAck(_message.Message):
    __slots__ = ("applied", "ignored")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    applied: int
    ignored: int
    def __init__(self, applied: _Optional[int] = ..., ignored: _Optional[int] = ...) -> None: ...

class MethodsCapabilitiesRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: str
    def __init__(self, caller: _Optional[str] = ...) -> None: ...

class MethodsCapabilities(_message.Message):
    __slots__ = ("protocol", "driver_commands", "property_writes")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DRIVER_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_WRITES_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    driver_commands: _containers.RepeatedScalarFieldContainer[str]
    property_writes: bool
    def __init__(self, protocol: _Optional[str] = ..., driver_commands: _Optional[_Iterable[str]] = ..., property_writes: _Optional[bool] = ...) -> None: ...

class MethodCall(_message.Message):
    __slots__ = ("id", "device_namespace", "device_name", "method", "command", "parameters_json", "writes", "arguments_json", "deadline_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    device_namespace: str
    device_name: str
    method: str
    command: str
    parameters_json: str
    writes: _containers.RepeatedCompositeFieldContainer[PropertyWrite]
    arguments_json: str
    deadline_ms: int
    def __init__(self, id: _Optional[str] = ..., device_namespace: _Optional[str] = ..., device_name: _Optional[str] = ..., method: _Optional[str] = ..., command: _Optional[str] = ..., parameters_json: _Optional[str] = ..., writes: _Optional[_Iterable[_Union[PropertyWrite, _Mapping]]] = ..., arguments_json: _Optional[str] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class PropertyWrite(_message.Message):
    __slots__ = ("property", "value")
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    property: str
    value: str
    def __init__(self, property: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class MethodResult(_message.Message):
    __slots__ = ("result_json", "error_code", "error_message", "error_field")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    error_code: str
    error_message: str
    error_field: str
    def __init__(self, result_json: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., error_field: _Optional[str] = ...) -> None: ...
