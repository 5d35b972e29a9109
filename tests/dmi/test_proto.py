"""The generated DMI v1beta1 code against the spec (shared/spec/kubeedge-dmi.md §1).

Field numbers and types are proven twice: by the descriptor against a transcription of the spec's
tables, and by wire bytes encoded here by hand (tags and varints) against ``SerializeToString``.
The service paths are proven by calling every method by its literal path over a Unix socket.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, descriptor, descriptor_pb2, message
from google.protobuf.descriptor import FieldDescriptor

from dmi_helpers import serve_dmi
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc

# --- the spec's tables, transcribed -------------------------------------------------------------

# "<number> <name> <type>" per field; "rep T" is repeated, "map<K,V>" a map, a capitalised type a
# message of package v1beta1 (or google.protobuf.Any).
SPEC_MESSAGES: dict[str, str] = {
    "MapperRegisterRequest": "1 withData bool; 2 mapper MapperInfo",
    "MapperRegisterResponse": "1 modelList rep DeviceModel; 2 deviceList rep Device",
    "MapperInfo": (
        "1 name string; 2 version string; 3 api_version string; 4 protocol string; "
        "5 address bytes; 6 state string"
    ),
    "DeviceModel": "1 name string; 2 spec DeviceModelSpec; 3 namespace string",
    "DeviceModelSpec": "1 properties rep ModelProperty; 2 commands rep DeviceCommand",
    "ModelProperty": (
        "1 name string; 2 description string; 3 type string; 4 accessMode string; "
        "5 minimum string; 6 maximum string; 7 unit string"
    ),
    "DeviceCommand": (
        "1 name string; 2 url string; 3 method string; 4 status_code rep string; "
        "5 parameters rep string; 6 response bytes"
    ),
    "Device": "1 name string; 2 spec DeviceSpec; 3 status DeviceStatus; 4 namespace string",
    "DeviceSpec": (
        "1 deviceModelReference string; 2 protocol ProtocolConfig; "
        "3 properties rep DeviceProperty; 4 methods rep DeviceMethod"
    ),
    "DeviceMethod": "1 name string; 2 description string; 3 propertyNames rep string",
    "DeviceProperty": (
        "1 name string; 2 desired TwinProperty; 3 visitors VisitorConfig; 4 reportCycle int64; "
        "5 collectCycle int64; 6 reportToCloud bool; 7 pushMethod PushMethod"
    ),
    "ProtocolConfig": "1 protocolName string; 2 configData CustomizedValue",
    "VisitorConfig": "1 protocolName string; 2 configData CustomizedValue",
    "CustomizedValue": "1 data map<string,Any>",
    "PushMethod": (
        "1 http PushMethodHTTP; 2 mqtt PushMethodMQTT; 3 dbMethod DBMethod; "
        "4 otel PushMethodOTEL; 5 anomalyDetection AnomalyDetection"
    ),
    "PushMethodHTTP": "1 hostname string; 2 port int64; 3 requestpath string; 4 timeout int64",
    "PushMethodMQTT": "1 address string; 2 topic string; 3 qos int32; 4 retained bool",
    "PushMethodOTEL": "1 endpointURL string",
    "DBMethod": (
        "1 influxdb2 DBMethodInfluxdb2; 2 redis DBMethodRedis; 3 tdengine DBMethodTDEngine; "
        "4 mysql DBMethodMySQL"
    ),
    "DBMethodInfluxdb2": (
        "1 influxdb2ClientConfig Influxdb2ClientConfig; 2 influxdb2DataConfig Influxdb2DataConfig"
    ),
    "Influxdb2ClientConfig": "1 url string; 2 org string; 3 bucket string",
    "Influxdb2DataConfig": "1 measurement string; 2 tag map<string,string>; 3 fieldKey string",
    "DBMethodRedis": "1 redisClientConfig RedisClientConfig",
    "RedisClientConfig": "1 addr string; 2 db int32; 3 poolsize int32; 4 minIdleConns int32",
    "DBMethodTDEngine": "1 tdEngineClientConfig TDEngineClientConfig",
    "TDEngineClientConfig": "1 addr string; 2 dbname string",
    "DBMethodMySQL": "1 mysqlClientConfig MySQLClientConfig",
    "MySQLClientConfig": "1 addr string; 2 database string; 3 userName string",
    "DBMethodOTEL": "1 otelExporterConfig OTELExporterConfig",
    "OTELExporterConfig": "1 endpointURL string",
    "AnomalyDetection": "1 data map<string,Any>",
    "ReportDeviceStatusRequest": (
        "1 deviceName string; 2 reportedDevice DeviceStatus; 3 deviceNamespace string"
    ),
    "ReportDeviceStatesRequest": "1 deviceName string; 2 deviceNamespace string; 3 state string",
    "DeviceStatus": "1 twins rep Twin; 2 reportToCloud bool; 3 reportCycle int64",
    "Twin": "1 propertyName string; 2 observedDesired TwinProperty; 3 reported TwinProperty",
    "TwinProperty": "1 value string; 2 metadata map<string,string>",
    "ReportDeviceStatusResponse": "",
    "ReportDeviceStatesResponse": "",
    "RemoveDeviceResponse": "",
    "UpdateDeviceResponse": "",
    "UpdateDeviceModelResponse": "",
    "RemoveDeviceModelResponse": "",
    "RegisterDeviceRequest": "1 device Device",
    "RegisterDeviceResponse": "1 deviceName string; 2 deviceNamespace string",
    "CreateDeviceModelRequest": "1 model DeviceModel",
    "CreateDeviceModelResponse": "1 deviceModelName string; 2 deviceModelNamespace string",
    "RemoveDeviceRequest": "1 deviceName string; 2 deviceNamespace string",
    "RemoveDeviceModelRequest": "1 modelName string; 2 modelNamespace string",
    "UpdateDeviceRequest": "1 device Device",
    "UpdateDeviceModelRequest": "1 model DeviceModel",
    "GetDeviceRequest": "1 deviceName string; 2 deviceNamespace string",
    "GetDeviceResponse": "1 device Device",
}

SPEC_SERVICES: dict[str, list[tuple[str, str, str]]] = {
    "DeviceManagerService": [
        ("MapperRegister", "MapperRegisterRequest", "MapperRegisterResponse"),
        ("ReportDeviceStatus", "ReportDeviceStatusRequest", "ReportDeviceStatusResponse"),
        ("ReportDeviceStates", "ReportDeviceStatesRequest", "ReportDeviceStatesResponse"),
    ],
    "DeviceMapperService": [
        ("RegisterDevice", "RegisterDeviceRequest", "RegisterDeviceResponse"),
        ("RemoveDevice", "RemoveDeviceRequest", "RemoveDeviceResponse"),
        ("UpdateDevice", "UpdateDeviceRequest", "UpdateDeviceResponse"),
        ("CreateDeviceModel", "CreateDeviceModelRequest", "CreateDeviceModelResponse"),
        ("RemoveDeviceModel", "RemoveDeviceModelRequest", "RemoveDeviceModelResponse"),
        ("UpdateDeviceModel", "UpdateDeviceModelRequest", "UpdateDeviceModelResponse"),
        ("GetDevice", "GetDeviceRequest", "GetDeviceResponse"),
    ],
}

_SCALARS = {
    "bool": FieldDescriptor.TYPE_BOOL,
    "string": FieldDescriptor.TYPE_STRING,
    "bytes": FieldDescriptor.TYPE_BYTES,
    "int32": FieldDescriptor.TYPE_INT32,
    "int64": FieldDescriptor.TYPE_INT64,
}


def _describe_field(field: descriptor.FieldDescriptor) -> str:
    """Render a field descriptor in the notation of ``SPEC_MESSAGES``."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = (
            field.message_type.fields_by_name["key"],
            field.message_type.fields_by_name["value"],
        )
        return f"{field.number} {field.name} map<{_type_name(key)},{_type_name(value)}>"
    repeated = "rep " if field.is_repeated else ""
    return f"{field.number} {field.name} {repeated}{_type_name(field)}"


def _type_name(field: descriptor.FieldDescriptor) -> str:
    if field.message_type is not None:
        return field.message_type.name
    return {code: name for name, code in _SCALARS.items()}[field.type]


# --- hand encoding of the wire format ----------------------------------------------------------


def _varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement (int32/int64)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _vint(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return _varint(number << 3 | 0) + _varint(value)


def _ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (wire type 2): string, bytes, message or map entry."""
    raw = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _f32(number: int, value: float) -> bytes:
    """A 32-bit fixed field (wire type 5): float."""
    return _varint(number << 3 | 5) + struct.pack("<f", value)


def _entry(number: int, key: str, value: bytes) -> bytes:
    """One map entry: key = 1, value = 2."""
    return _ld(number, _ld(1, key) + value)


def _any(type_name: str, payload: bytes) -> bytes:
    """A google.protobuf.Any: type_url = 1, value = 2."""
    return _ld(1, f"type.googleapis.com/google.protobuf.{type_name}") + _ld(2, payload)


def _raw_any(type_name: str, payload: bytes) -> any_pb2.Any:
    """An Any message holding ``payload`` as the google.protobuf wrapper ``type_name``."""
    return any_pb2.Any(type_url=f"type.googleapis.com/google.protobuf.{type_name}", value=payload)


# --- descriptor ---------------------------------------------------------------------------------


def test_file_options() -> None:
    """The file is proto3 in package v1beta1 with KubeEdge's go_package and one import."""
    file = descriptor_pb2.FileDescriptorProto()
    api_pb2.DESCRIPTOR.CopyToProto(file)
    assert file.name == "dmi/v1beta1/api.proto"
    assert file.package == "v1beta1"
    assert file.syntax == "proto3"
    assert file.options.go_package == "./;v1beta1"
    assert list(file.dependency) == ["google/protobuf/any.proto"]


def test_message_set_is_the_spec() -> None:
    """Every message of the spec exists, and no other top-level message."""
    assert set(api_pb2.DESCRIPTOR.message_types_by_name) == set(SPEC_MESSAGES)


@pytest.mark.parametrize("name", sorted(SPEC_MESSAGES))
def test_message_fields(name: str) -> None:
    """Each message has exactly the spec's field names, numbers and types."""
    fields = api_pb2.DESCRIPTOR.message_types_by_name[name].fields
    actual = sorted((_describe_field(f) for f in fields), key=lambda s: int(s.split()[0]))
    expected = [f.strip() for f in SPEC_MESSAGES[name].split(";") if f.strip()]
    assert actual == expected


def test_json_names() -> None:
    """The snake_case fields keep protoc's camelCase JSON names, as in the spec."""
    info = api_pb2.MapperInfo.DESCRIPTOR.fields_by_name["api_version"]
    command = api_pb2.DeviceCommand.DESCRIPTOR.fields_by_name["status_code"]
    assert (info.json_name, command.json_name) == ("apiVersion", "statusCode")


def test_no_oneofs_or_optionals() -> None:
    """No field is in a oneof or marked optional: presence is plain proto3, as in KubeEdge."""
    for msg in api_pb2.DESCRIPTOR.message_types_by_name.values():
        assert not msg.oneofs, msg.name


@pytest.mark.parametrize("service", sorted(SPEC_SERVICES))
def test_service_methods(service: str) -> None:
    """Each service has exactly the spec's unary methods with their request and response types."""
    desc = api_pb2.DESCRIPTOR.services_by_name[service]
    assert desc.full_name == f"v1beta1.{service}"
    actual = [
        (
            m.name,
            m.input_type.full_name,
            m.output_type.full_name,
            m.client_streaming,
            m.server_streaming,
        )
        for m in desc.methods
    ]
    expected = [
        (name, f"v1beta1.{req}", f"v1beta1.{resp}", False, False)
        for name, req, resp in SPEC_SERVICES[service]
    ]
    assert actual == expected


def test_no_other_services() -> None:
    """The file defines the two DMI services and nothing else."""
    assert set(api_pb2.DESCRIPTOR.services_by_name) == set(SPEC_SERVICES)


def test_generated_modules_are_named_in_the_package() -> None:
    """Message classes live in twinplane.dmi.v1beta1.api_pb2; nothing imports dmi.v1beta1."""
    assert api_pb2.Device.__module__ == "twinplane.dmi.v1beta1.api_pb2"
    assert api_pb2_grpc.__name__ == "twinplane.dmi.v1beta1.api_pb2_grpc"
    assert "dmi.v1beta1.api_pb2" not in sys.modules


# --- golden wire bytes --------------------------------------------------------------------------

_MAPPER_ADDRESS = b"/etc/kubeedge/modbus.sock"


def _golden_cases() -> list[tuple[str, message.Message, bytes]]:
    mapper_register = api_pb2.MapperRegisterRequest(
        withData=True,
        mapper=api_pb2.MapperInfo(
            name="modbus",
            version="v1.0",
            api_version="v1.0",
            protocol="modbus",
            address=_MAPPER_ADDRESS,
            state="ok",
        ),
    )
    mapper_register_wire = _vint(1, 1) + _ld(
        2,
        _ld(1, "modbus")
        + _ld(2, "v1.0")
        + _ld(3, "v1.0")
        + _ld(4, "modbus")
        + _ld(5, _MAPPER_ADDRESS)
        + _ld(6, "ok"),
    )

    status = api_pb2.ReportDeviceStatusRequest(
        deviceName="beta1-device",
        deviceNamespace="default",
        reportedDevice=api_pb2.DeviceStatus(
            twins=[
                api_pb2.Twin(
                    propertyName="temperature",
                    observedDesired=api_pb2.TwinProperty(value="30"),
                    reported=api_pb2.TwinProperty(value="31", metadata={"type": "int"}),
                )
            ],
            reportToCloud=True,
            reportCycle=10_000,
        ),
    )
    twin_wire = (
        _ld(1, "temperature")
        + _ld(2, _ld(1, "30"))
        + _ld(3, _ld(1, "31") + _entry(2, "type", _ld(2, "int")))
    )
    status_wire = (
        _ld(1, "beta1-device")
        + _ld(2, _ld(1, twin_wire) + _vint(2, 1) + _vint(3, 10_000))
        + _ld(3, "default")
    )

    states = api_pb2.ReportDeviceStatesRequest(
        deviceName="d1", deviceNamespace="default", state="online"
    )
    # Written out byte by byte: tag 0x0a = field 1 LEN, 0x12 = field 2 LEN, 0x1a = field 3 LEN.
    states_wire = b"\x0a\x02d1\x12\x07default\x1a\x06online"

    prop = api_pb2.DeviceProperty(
        name="temperature",
        desired=api_pb2.TwinProperty(value="30", metadata={"type": "int"}),
        visitors=api_pb2.VisitorConfig(protocolName="modbus"),
        reportCycle=-1,  # int64, not sint64: ten bytes of two's complement
        collectCycle=1000,
        reportToCloud=True,
        pushMethod=api_pb2.PushMethod(
            mqtt=api_pb2.PushMethodMQTT(
                address="tcp://127.0.0.1:1883", topic="t", qos=-1, retained=True
            ),
            dbMethod=api_pb2.DBMethod(
                redis=api_pb2.DBMethodRedis(
                    redisClientConfig=api_pb2.RedisClientConfig(
                        addr="127.0.0.1:6379", db=1, poolsize=20, minIdleConns=5
                    )
                )
            ),
            otel=api_pb2.PushMethodOTEL(endpointURL="http://127.0.0.1:4318/v1/metrics"),
        ),
    )
    # Any values built from raw bytes, as a Go peer packs them (the codec has its own tests).
    prop.visitors.configData.data["offset"].CopyFrom(_raw_any("FloatValue", _f32(1, 2.0)))
    prop.pushMethod.anomalyDetection.data["algorithm"].CopyFrom(
        _raw_any("StringValue", _ld(1, "zscore"))
    )
    visitors_wire = _ld(1, "modbus") + _ld(
        2, _entry(1, "offset", _ld(2, _any("FloatValue", _f32(1, 2.0))))
    )
    push_wire = (
        _ld(2, _ld(1, "tcp://127.0.0.1:1883") + _ld(2, "t") + _vint(3, -1) + _vint(4, 1))
        + _ld(
            3,
            _ld(2, _ld(1, _ld(1, "127.0.0.1:6379") + _vint(2, 1) + _vint(3, 20) + _vint(4, 5))),
        )
        + _ld(4, _ld(1, "http://127.0.0.1:4318/v1/metrics"))
        + _ld(5, _entry(1, "algorithm", _ld(2, _any("StringValue", _ld(1, "zscore")))))
    )
    prop_wire = (
        _ld(1, "temperature")
        + _ld(2, _ld(1, "30") + _entry(2, "type", _ld(2, "int")))
        + _ld(3, visitors_wire)
        + _vint(4, -1)
        + _vint(5, 1000)
        + _vint(6, 1)
        + _ld(7, push_wire)
    )
    assert len(_vint(4, -1)) == 11  # tag + ten bytes

    device = api_pb2.Device(
        name="beta1-device",
        namespace="default",
        spec=api_pb2.DeviceSpec(
            deviceModelReference="beta1-model",
            protocol=api_pb2.ProtocolConfig(protocolName="modbus"),
            properties=[prop],
            methods=[
                api_pb2.DeviceMethod(
                    name="setValue", description="d", propertyNames=["temperature", "humidity"]
                )
            ],
        ),
        status=api_pb2.DeviceStatus(reportToCloud=True, reportCycle=5000),
    )
    device.spec.protocol.configData.data["port"].CopyFrom(_raw_any("Int32Value", _vint(1, 502)))
    device_wire = (
        _ld(1, "beta1-device")
        + _ld(
            2,
            _ld(1, "beta1-model")
            + _ld(
                2,
                _ld(1, "modbus")
                + _ld(2, _entry(1, "port", _ld(2, _any("Int32Value", _vint(1, 502))))),
            )
            + _ld(3, prop_wire)
            + _ld(4, _ld(1, "setValue") + _ld(2, "d") + _ld(3, "temperature") + _ld(3, "humidity")),
        )
        + _ld(3, _vint(2, 1) + _vint(3, 5000))
        + _ld(4, "default")
    )

    model = api_pb2.DeviceModel(
        name="beta1-model",
        namespace="default",
        spec=api_pb2.DeviceModelSpec(
            properties=[
                api_pb2.ModelProperty(
                    name="temperature",
                    description="room",
                    type="INT",
                    accessMode="ReadWrite",
                    minimum="0",
                    maximum="100",
                    unit="C",
                )
            ],
            commands=[
                api_pb2.DeviceCommand(
                    name="c",
                    url="/u",
                    method="GET",
                    status_code=["200", "404"],
                    parameters=["p"],
                    response=b"\x00\xff",
                )
            ],
        ),
    )
    model_wire = (
        _ld(1, "beta1-model")
        + _ld(
            2,
            _ld(
                1,
                _ld(1, "temperature")
                + _ld(2, "room")
                + _ld(3, "INT")
                + _ld(4, "ReadWrite")
                + _ld(5, "0")
                + _ld(6, "100")
                + _ld(7, "C"),
            )
            + _ld(
                2,
                _ld(1, "c")
                + _ld(2, "/u")
                + _ld(3, "GET")
                + _ld(4, "200")
                + _ld(4, "404")
                + _ld(5, "p")
                + _ld(6, b"\x00\xff"),
            ),
        )
        + _ld(3, "default")
    )

    db = api_pb2.DBMethod(
        influxdb2=api_pb2.DBMethodInfluxdb2(
            influxdb2ClientConfig=api_pb2.Influxdb2ClientConfig(
                url="http://127.0.0.1:8086", org="o", bucket="b"
            ),
            influxdb2DataConfig=api_pb2.Influxdb2DataConfig(
                measurement="m", tag={"unit": "C"}, fieldKey="f"
            ),
        ),
        tdengine=api_pb2.DBMethodTDEngine(
            tdEngineClientConfig=api_pb2.TDEngineClientConfig(addr="127.0.0.1:6041", dbname="db")
        ),
        mysql=api_pb2.DBMethodMySQL(
            mysqlClientConfig=api_pb2.MySQLClientConfig(
                addr="localhost:3306", database="d", userName="u"
            )
        ),
    )
    db_wire = (
        _ld(
            1,
            _ld(1, _ld(1, "http://127.0.0.1:8086") + _ld(2, "o") + _ld(3, "b"))
            + _ld(2, _ld(1, "m") + _entry(2, "unit", _ld(2, "C")) + _ld(3, "f")),
        )
        + _ld(3, _ld(1, _ld(1, "127.0.0.1:6041") + _ld(2, "db")))
        + _ld(4, _ld(1, _ld(1, "localhost:3306") + _ld(2, "d") + _ld(3, "u")))
    )

    http = api_pb2.PushMethodHTTP(hostname="h", port=8080, requestpath="/p", timeout=3)
    http_wire = _ld(1, "h") + _vint(2, 8080) + _ld(3, "/p") + _vint(4, 3)

    return [
        ("MapperRegisterRequest", mapper_register, mapper_register_wire),
        (
            "MapperRegisterResponse",
            api_pb2.MapperRegisterResponse(modelList=[model], deviceList=[device]),
            _ld(1, model_wire) + _ld(2, device_wire),
        ),
        ("ReportDeviceStatusRequest", status, status_wire),
        ("ReportDeviceStatesRequest", states, states_wire),
        ("DeviceProperty", prop, prop_wire),
        (
            "RegisterDeviceRequest",
            api_pb2.RegisterDeviceRequest(device=device),
            _ld(1, device_wire),
        ),
        ("UpdateDeviceRequest", api_pb2.UpdateDeviceRequest(device=device), _ld(1, device_wire)),
        ("GetDeviceResponse", api_pb2.GetDeviceResponse(device=device), _ld(1, device_wire)),
        (
            "CreateDeviceModelRequest",
            api_pb2.CreateDeviceModelRequest(model=model),
            _ld(1, model_wire),
        ),
        (
            "UpdateDeviceModelRequest",
            api_pb2.UpdateDeviceModelRequest(model=model),
            _ld(1, model_wire),
        ),
        ("DBMethod", db, db_wire),
        ("PushMethodHTTP", http, http_wire),
        (
            "DBMethodOTEL",
            api_pb2.DBMethodOTEL(
                otelExporterConfig=api_pb2.OTELExporterConfig(endpointURL="http://x")
            ),
            _ld(1, _ld(1, "http://x")),
        ),
        (
            "RegisterDeviceResponse",
            api_pb2.RegisterDeviceResponse(deviceName="d", deviceNamespace="ns"),
            _ld(1, "d") + _ld(2, "ns"),
        ),
        (
            "CreateDeviceModelResponse",
            api_pb2.CreateDeviceModelResponse(deviceModelName="m", deviceModelNamespace="ns"),
            _ld(1, "m") + _ld(2, "ns"),
        ),
        (
            "RemoveDeviceRequest",
            api_pb2.RemoveDeviceRequest(deviceName="d", deviceNamespace="ns"),
            _ld(1, "d") + _ld(2, "ns"),
        ),
        (
            "RemoveDeviceModelRequest",
            api_pb2.RemoveDeviceModelRequest(modelName="m", modelNamespace="ns"),
            _ld(1, "m") + _ld(2, "ns"),
        ),
        (
            "GetDeviceRequest",
            api_pb2.GetDeviceRequest(deviceName="d", deviceNamespace="ns"),
            _ld(1, "d") + _ld(2, "ns"),
        ),
    ]


_GOLDEN = _golden_cases()


@pytest.mark.parametrize(("name", "msg", "wire"), _GOLDEN, ids=[case[0] for case in _GOLDEN])
def test_golden_wire_bytes(name: str, msg: message.Message, wire: bytes) -> None:
    """A message serializes to the bytes hand-encoded from the spec's numbers, and parses back."""
    assert msg.DESCRIPTOR.name == name
    assert msg.SerializeToString(deterministic=True) == wire
    assert type(msg).FromString(wire) == msg


@pytest.mark.parametrize(
    "name",
    [
        "ReportDeviceStatusResponse",
        "ReportDeviceStatesResponse",
        "RemoveDeviceResponse",
        "UpdateDeviceResponse",
        "UpdateDeviceModelResponse",
        "RemoveDeviceModelResponse",
    ],
)
def test_empty_responses(name: str) -> None:
    """The empty responses have no fields and serialize to no bytes."""
    cls = getattr(api_pb2, name)
    assert cls().SerializeToString() == b""
    assert not cls.DESCRIPTOR.fields


def test_unknown_fields_survive() -> None:
    """A field from a newer peer is kept and re-sent, so proxies do not drop it."""
    wire = _ld(1, "d") + _ld(99, "future")
    assert api_pb2.GetDeviceRequest.FromString(wire).SerializeToString() == wire


# --- every method by its literal path over a Unix socket ---------------------------------------

Ctx = grpc.aio.ServicerContext[Any, Any]


class _Manager(api_pb2_grpc.DeviceManagerServiceServicer):
    """Answers derived from the request, so a test sees its call arrived at the right method."""

    async def MapperRegister(  # noqa: N802 - the generated servicer's name
        self, request: api_pb2.MapperRegisterRequest, context: Ctx
    ) -> api_pb2.MapperRegisterResponse:
        return api_pb2.MapperRegisterResponse(
            deviceList=[api_pb2.Device(name=request.mapper.protocol)]
        )

    async def ReportDeviceStatus(  # noqa: N802
        self, request: api_pb2.ReportDeviceStatusRequest, context: Ctx
    ) -> api_pb2.ReportDeviceStatusResponse:
        context.set_trailing_metadata((("method", "ReportDeviceStatus"),))
        return api_pb2.ReportDeviceStatusResponse()

    async def ReportDeviceStates(  # noqa: N802
        self, request: api_pb2.ReportDeviceStatesRequest, context: Ctx
    ) -> api_pb2.ReportDeviceStatesResponse:
        context.set_trailing_metadata((("method", "ReportDeviceStates"),))
        return api_pb2.ReportDeviceStatesResponse()


class _Mapper(api_pb2_grpc.DeviceMapperServiceServicer):
    """Answers derived from the request, so a test sees its call arrived at the right method."""

    async def RegisterDevice(  # noqa: N802
        self, request: api_pb2.RegisterDeviceRequest, context: Ctx
    ) -> api_pb2.RegisterDeviceResponse:
        return api_pb2.RegisterDeviceResponse(deviceName=request.device.name)

    async def RemoveDevice(  # noqa: N802
        self, request: api_pb2.RemoveDeviceRequest, context: Ctx
    ) -> api_pb2.RemoveDeviceResponse:
        context.set_trailing_metadata((("method", "RemoveDevice"),))
        return api_pb2.RemoveDeviceResponse()

    async def UpdateDevice(  # noqa: N802
        self, request: api_pb2.UpdateDeviceRequest, context: Ctx
    ) -> api_pb2.UpdateDeviceResponse:
        context.set_trailing_metadata((("method", "UpdateDevice"),))
        return api_pb2.UpdateDeviceResponse()

    async def CreateDeviceModel(  # noqa: N802
        self, request: api_pb2.CreateDeviceModelRequest, context: Ctx
    ) -> api_pb2.CreateDeviceModelResponse:
        return api_pb2.CreateDeviceModelResponse(deviceModelName=request.model.name)

    async def RemoveDeviceModel(  # noqa: N802
        self, request: api_pb2.RemoveDeviceModelRequest, context: Ctx
    ) -> api_pb2.RemoveDeviceModelResponse:
        context.set_trailing_metadata((("method", "RemoveDeviceModel"),))
        return api_pb2.RemoveDeviceModelResponse()

    async def UpdateDeviceModel(  # noqa: N802
        self, request: api_pb2.UpdateDeviceModelRequest, context: Ctx
    ) -> api_pb2.UpdateDeviceModelResponse:
        context.set_trailing_metadata((("method", "UpdateDeviceModel"),))
        return api_pb2.UpdateDeviceModelResponse()

    async def GetDevice(  # noqa: N802
        self, request: api_pb2.GetDeviceRequest, context: Ctx
    ) -> api_pb2.GetDeviceResponse:
        return api_pb2.GetDeviceResponse(
            device=api_pb2.Device(name=request.deviceName, namespace=request.deviceNamespace)
        )


@pytest.fixture
async def dmi_target() -> AsyncIterator[str]:
    """Both DMI services served over a Unix socket; yields the client target."""
    async with serve_dmi(_Manager(), _Mapper()) as target:
        yield target


# (path, request, expected response or None, expected "method" trailer or None)
_CALLS: list[tuple[str, message.Message, message.Message | None, str | None]] = [
    (
        "/v1beta1.DeviceManagerService/MapperRegister",
        api_pb2.MapperRegisterRequest(mapper=api_pb2.MapperInfo(protocol="modbus")),
        api_pb2.MapperRegisterResponse(deviceList=[api_pb2.Device(name="modbus")]),
        None,
    ),
    (
        "/v1beta1.DeviceManagerService/ReportDeviceStatus",
        api_pb2.ReportDeviceStatusRequest(deviceName="d"),
        None,
        "ReportDeviceStatus",
    ),
    (
        "/v1beta1.DeviceManagerService/ReportDeviceStates",
        api_pb2.ReportDeviceStatesRequest(deviceName="d", state="online"),
        None,
        "ReportDeviceStates",
    ),
    (
        "/v1beta1.DeviceMapperService/RegisterDevice",
        api_pb2.RegisterDeviceRequest(device=api_pb2.Device(name="d")),
        api_pb2.RegisterDeviceResponse(deviceName="d"),
        None,
    ),
    (
        "/v1beta1.DeviceMapperService/RemoveDevice",
        api_pb2.RemoveDeviceRequest(deviceName="d"),
        None,
        "RemoveDevice",
    ),
    (
        "/v1beta1.DeviceMapperService/UpdateDevice",
        api_pb2.UpdateDeviceRequest(device=api_pb2.Device(name="d")),
        None,
        "UpdateDevice",
    ),
    (
        "/v1beta1.DeviceMapperService/CreateDeviceModel",
        api_pb2.CreateDeviceModelRequest(model=api_pb2.DeviceModel(name="m")),
        api_pb2.CreateDeviceModelResponse(deviceModelName="m"),
        None,
    ),
    (
        "/v1beta1.DeviceMapperService/RemoveDeviceModel",
        api_pb2.RemoveDeviceModelRequest(modelName="m"),
        None,
        "RemoveDeviceModel",
    ),
    (
        "/v1beta1.DeviceMapperService/UpdateDeviceModel",
        api_pb2.UpdateDeviceModelRequest(model=api_pb2.DeviceModel(name="m")),
        None,
        "UpdateDeviceModel",
    ),
    (
        "/v1beta1.DeviceMapperService/GetDevice",
        api_pb2.GetDeviceRequest(deviceName="d", deviceNamespace="ns"),
        api_pb2.GetDeviceResponse(device=api_pb2.Device(name="d", namespace="ns")),
        None,
    ),
]


def _serialize(msg: message.Message) -> bytes:
    return msg.SerializeToString()


def _response_class(path: str) -> Callable[[bytes], message.Message]:
    service, method = path.strip("/").split("/")
    desc = api_pb2.DESCRIPTOR.services_by_name[service.removeprefix("v1beta1.")]
    cls: type[message.Message] = getattr(api_pb2, desc.methods_by_name[method].output_type.name)
    return cls.FromString


@pytest.mark.parametrize(
    ("path", "request_msg", "expected", "trailer"), _CALLS, ids=[c[0] for c in _CALLS]
)
async def test_method_paths(
    dmi_target: str,
    path: str,
    request_msg: message.Message,
    expected: message.Message | None,
    trailer: str | None,
) -> None:
    """Each RPC answers at the full path the spec gives, reached over a Unix socket."""
    async with grpc.aio.insecure_channel(dmi_target) as channel:
        method = channel.unary_unary(
            path, request_serializer=_serialize, response_deserializer=_response_class(path)
        )
        call = method(request_msg, timeout=5)
        response = await call
        if expected is not None:
            assert response == expected
        if trailer is not None:
            assert ("method", trailer) in tuple(await call.trailing_metadata() or ())


async def test_generated_stubs(dmi_target: str) -> None:
    """The generated client stubs reach the generated servicers of both services."""
    async with grpc.aio.insecure_channel(dmi_target) as channel:
        manager = api_pb2_grpc.DeviceManagerServiceStub(channel)
        mapper = api_pb2_grpc.DeviceMapperServiceStub(channel)
        registered = await manager.MapperRegister(
            api_pb2.MapperRegisterRequest(
                withData=True, mapper=api_pb2.MapperInfo(protocol="modbus")
            ),
            timeout=5,
        )
        got = await mapper.GetDevice(api_pb2.GetDeviceRequest(deviceName="d"), timeout=5)
    assert [d.name for d in registered.deviceList] == ["modbus"]
    assert got.device.name == "d"
