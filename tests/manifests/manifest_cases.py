"""Shared cases for the manifest tests: the KubeEdge fixtures, valid documents, strategies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from needs import unavailable
from twinplane.manifests import API_VERSION, NANOSECOND_CYCLE_THRESHOLD

KUBEEDGE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "kubeedge"
"""The real CRDs and samples, in the shared folder beside the repository."""


def fixtures(sub: str) -> Path:
    """``KUBEEDGE / sub``; when missing, fail under ``CI`` and skip elsewhere, saying why."""
    folder = KUBEEDGE / sub
    if not folder.is_dir():
        message = (
            f"KubeEdge fixtures not found at {folder} (expected ../shared/fixtures/kubeedge "
            f"beside the repository)"
        )
        unavailable(message)
    return folder


def sample_names(sub: str) -> list[str]:
    """File names in a fixture folder (empty when it is missing; tests then call fixtures())."""
    folder = KUBEEDGE / sub
    return sorted(p.name for p in folder.glob("*.yaml")) if folder.is_dir() else []


def model_doc() -> dict[str, Any]:
    """A valid Modbus DeviceModel with model-level visitors and protocol defaults."""
    return copy.deepcopy(_MODEL)


def device_doc() -> dict[str, Any]:
    """A valid Modbus Device of :func:`model_doc`, using most of the schema."""
    return copy.deepcopy(_DEVICE)


def status_doc() -> dict[str, Any]:
    """A valid DeviceStatus of :func:`device_doc`."""
    return copy.deepcopy(_STATUS)


_MODEL: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "DeviceModel",
    "metadata": {"name": "temperature-model", "namespace": "default"},
    "spec": {
        "protocol": "modbus",
        "protocolConfigData": {"communicateMode": "TCP", "port": "5502", "slaveID": 1},
        "properties": [
            {
                "name": "temperature",
                "description": "actual temperature",
                "type": "FLOAT",
                "accessMode": "ReadWrite",
                "minimum": "0",
                "maximum": "100.0",
                "unit": "Celsius",
                "visitors": {
                    "protocolName": "modbus",
                    "configData": {"register": "HoldingRegister", "offset": 0, "limit": 1},
                },
            },
            {"name": "temperature-switch", "type": "INT", "accessMode": "ReadWrite"},
            {"name": "alarm", "type": "BOOLEAN", "accessMode": "ReadOnly"},
        ],
    },
}

_DEVICE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Device",
    "metadata": {
        "name": "temperature-instance",
        "namespace": "default",
        "labels": {"app.kubernetes.io/name": "thermo"},
    },
    "spec": {
        "deviceModelRef": {"name": "temperature-model"},
        "nodeName": "kind-worker",
        "protocol": {
            "protocolName": "modbus",
            "configData": {"communicateMode": "TCP", "port": "5502", "ip": "127.0.0.1"},
        },
        "properties": [
            {
                "name": "temperature",
                "visitors": {
                    "protocolName": "modbus",
                    "configData": {"dataType": "float", "offset": 2, "scale": 0.1},
                },
                "collectCycle": 10000,
                "reportCycle": 10000,
                "reportToCloud": True,
                "pushMethod": {
                    "mqtt": {"address": "tcp://127.0.0.1:1883", "topic": "t", "qos": 1},
                    "http": {"hostName": "http://127.0.0.1", "port": 8080, "requestPath": "/p"},
                    "otel": {"endpointURL": "http://127.0.0.1:4318/v1/metrics"},
                    "dbMethod": {
                        "influxdb2": {
                            "influxdb2ClientConfig": {"url": "http://i:8086", "org": "o"},
                            "influxdb2DataConfig": {"measurement": "m", "tag": {"unit": "C"}},
                        },
                        "redis": {"redisClientConfig": {"addr": "r:6379", "poolsize": 4}},
                        "TDEngine": {"TDEngineClientConfig": {"addr": "t:6041", "dbName": "d"}},
                        "mysql": {"mysqlClientConfig": {"addr": "m:3306", "userName": "u"}},
                    },
                    "anomalyDetection": {"threshold": 3, "rules": [{"op": ">"}]},
                },
            },
            {
                "name": "temperature-switch",
                "desired": {"value": "1", "metadata": {"type": "int"}},
                "visitors": {
                    "protocolName": "modbus",
                    "configData": {"dataType": "int", "register": "CoilRegister", "offset": 0},
                },
                "collectCycle": 10000,
                "reportToCloud": True,
            },
        ],
        "methods": [
            {
                "name": "SwitchControl",
                "description": "control the switch of the device",
                "propertyNames": ["temperature-switch"],
            }
        ],
        "stateReport": {"reportToCloud": True, "reportCycle": 5000},
    },
    "status": {"reportToCloud": False, "reportCycle": 1000, "twins": [{"propertyName": "x"}]},
}

_STATUS: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "DeviceStatus",
    "metadata": {
        "name": "temperature-instance",
        "namespace": "default",
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "Device",
                "name": "temperature-instance",
                "uid": "0b3c",
                "controller": True,
            }
        ],
    },
    "spec": {},
    "status": {
        "twins": [
            {
                "propertyName": "temperature",
                "reported": {"value": "21.5", "metadata": {"timestamp": "1700000000000"}},
                "observedDesired": {"value": ""},
            }
        ],
        "state": "online",
        "lastOnlineTime": "2024-01-01T00:00:00Z",
        "extensions": {"anomaly": {"score": 0.1}},
    },
}

# --- strategies -------------------------------------------------------------------------------

TWIN_KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/@#"
DNS_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"

twin_keys = st.text(TWIN_KEY_CHARS, min_size=1, max_size=20)
dns_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
cycles = st.integers(0, NANOSECOND_CYCLE_THRESHOLD - 1)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
config_data = st.dictionaries(texts, json_values, max_size=4)


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts holding any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


visitors = _optional(protocolName=texts, configData=config_data)
push_methods = _optional(
    http=_optional(hostName=texts, port=st.integers(0, 65535), timeout=st.integers(0, 10**6)),
    mqtt=_optional(address=texts, topic=texts, qos=st.integers(0, 2), retained=st.booleans()),
    otel=_optional(endpointURL=texts),
    dbMethod=_optional(
        redis=_optional(redisClientConfig=_optional(addr=texts, db=st.integers(0, 15))),
        TDEngine=_optional(TDEngineClientConfig=_optional(addr=texts, dbName=texts)),
    ),
    anomalyDetection=config_data,
)


@st.composite
def device_docs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid Device documents: unique property names, cycles in milliseconds."""
    names = draw(st.lists(twin_keys, unique=True, max_size=4))
    properties = [
        {"name": name}
        | draw(
            _optional(
                desired=st.fixed_dictionaries(
                    {"value": texts}, optional={"metadata": st.dictionaries(texts, texts)}
                ),
                visitors=visitors,
                collectCycle=cycles,
                reportCycle=cycles,
                reportToCloud=st.booleans(),
                pushMethod=push_methods,
            )
        )
        for name in names
    ]
    spec: dict[str, Any] = {
        "deviceModelRef": {"name": draw(dns_names)},
        "protocol": {"protocolName": draw(texts)} | draw(_optional(configData=config_data)),
    }
    if properties:  # an empty list is left out by to_dict(), like an absent one
        spec["properties"] = properties
    spec |= draw(_optional(nodeName=texts, stateReport=_optional(reportCycle=cycles)))
    method_names = draw(st.lists(twin_keys, unique=True, max_size=2))
    if method_names:
        spec["methods"] = [
            {
                "name": m,
                "propertyNames": draw(st.lists(st.sampled_from(names or ["x"]), min_size=1)),
            }
            for m in method_names
        ]
    metadata = {"name": draw(dns_names), "namespace": draw(dns_names)}
    metadata |= draw(_optional(labels=st.dictionaries(texts, texts, max_size=2), uid=texts))
    return {"apiVersion": API_VERSION, "kind": "Device", "metadata": metadata, "spec": spec}
