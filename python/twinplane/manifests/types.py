"""Typed ``devices.kubeedge.io/v1beta1`` objects: Device, DeviceModel and DeviceStatus.

The structs mirror the CRD schemas of KubeEdge (``build/crds/devices/devices_v1beta1_*.yaml``):
attribute names are snake_case, wire names are the CRD's camelCase (``collect_cycle`` is
``collectCycle``, ``endpoint_url`` is ``endpointURL``). They are frozen; the free-form parts the
CRDs keep as they are (``configData``, ``protocolConfigData``, ``anomalyDetection``,
``extensions``, the deprecated ``Device.status``) are plain dicts and must be treated as
read-only (:func:`~twinplane.manifests.overridden_device` returns copies).

Optional fields default to ``None`` (lists to ``()``) and are left out of :meth:`Device.to_dict`
when unset, so what was loaded encodes back to the same mapping, except that unknown fields are
pruned, quirks are corrected, ``metadata.namespace`` is filled in and an empty list is left out
like an absent one. The constraints carried in
``Annotated[..., Meta(...)]`` (enums, integer widths, the twin key charset, DNS names) are what
:mod:`twinplane.manifests.validate` checks, so the structs are the one description of the
schema; ``tests/manifests`` cross-checks it against the real CRDs.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal, TypeAlias, get_args

import msgspec

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "DNS_LABEL_PATTERN",
    "DNS_SUBDOMAIN_PATTERN",
    "ENUM_ORDERS",
    "KINDS",
    "TWIN_KEY_PATTERN",
    "AccessMode",
    "DBInfluxdb2",
    "DBMethod",
    "DBMySQL",
    "DBRedis",
    "DBTDEngine",
    "Device",
    "DeviceMethod",
    "DeviceModel",
    "DeviceModelRef",
    "DeviceModelSpec",
    "DeviceProperty",
    "DeviceSpec",
    "DeviceStatus",
    "DeviceStatusOld",
    "DeviceStatusSpec",
    "DeviceStatusStatus",
    "Influxdb2ClientConfig",
    "Influxdb2DataConfig",
    "Manifest",
    "ModelProperty",
    "MySQLClientConfig",
    "ObjectMeta",
    "OwnerReference",
    "PropertyType",
    "ProtocolConfig",
    "PushHTTP",
    "PushMQTT",
    "PushMethod",
    "PushOTEL",
    "RedisClientConfig",
    "StateReport",
    "TDEngineClientConfig",
    "Twin",
    "TwinValue",
    "Visitors",
]

API_GROUP: Final = "devices.kubeedge.io"
API_VERSION: Final = "devices.kubeedge.io/v1beta1"

TWIN_KEY_PATTERN: Final = r"^[a-zA-Z0-9-_.,:/@#]{1,128}$"
"""KubeEdge's twin key rule (EdgeCore answers 400 to a twin whose name breaks it)."""

DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""Kubernetes object names (RFC 1123 subdomain, at most 253 characters)."""

DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""Kubernetes namespace names (RFC 1123 label, at most 63 characters)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

Int64: TypeAlias = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
"""An OpenAPI ``integer`` (``format: int64``, or no format: Go's 64-bit ``int``)."""

Cycle: TypeAlias = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=_INT64_MAX,
        extra={"cycle": True, "why": "a cycle of 0 means the mapper's default (1 s)"},
    ),
]
"""A period in milliseconds (``int64`` in the CRD; negative periods make Go tickers panic)."""

Qos: TypeAlias = Annotated[
    int, msgspec.Meta(ge=0, le=2, extra={"why": "MQTT has QoS levels 0, 1 and 2"})
]
"""An MQTT QoS level (``int32`` in the CRD)."""

PropertyName: TypeAlias = Annotated[
    str, msgspec.Meta(pattern=TWIN_KEY_PATTERN, extra={"why": "KubeEdge's twin key charset"})
]
"""A property name: it becomes a twin key, so KubeEdge's twin key charset applies."""

ObjectName: TypeAlias = Annotated[
    str,
    msgspec.Meta(
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
        extra={"why": "a Kubernetes object name (lower-case RFC 1123 subdomain)"},
    ),
]
NamespaceName: TypeAlias = Annotated[
    str,
    msgspec.Meta(
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
        extra={"why": "a Kubernetes namespace (lower-case RFC 1123 label)"},
    ),
]

FreeForm: TypeAlias = dict[str, Any]
"""A free-form object (``x-kubernetes-preserve-unknown-fields``), kept as written."""

PropertyType: TypeAlias = Literal["INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES", "STREAM"]
"""``DeviceModel.spec.properties[].type``."""

AccessMode: TypeAlias = Literal["ReadWrite", "ReadOnly"]
"""``DeviceModel.spec.properties[].accessMode``."""

ENUM_ORDERS: Final[tuple[tuple[str, ...], ...]] = (get_args(PropertyType), get_args(AccessMode))
"""The enums in the CRD's order (msgspec sorts literal values; messages list them as the CRD)."""


class _Struct(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of every manifest struct: frozen, camelCase on the wire, unset fields left out."""


# --- metadata ---------------------------------------------------------------------------------


class OwnerReference(_Struct, frozen=True):
    """A Kubernetes owner reference (a DeviceStatus is owned by its Device)."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(_Struct, frozen=True):
    """The Kubernetes object metadata twinplane keeps.

    ``namespace`` is ``None`` when not written; loading fills in ``"default"`` as the API server
    does, and :attr:`Device.namespace` reads ``None`` as ``"default"``.
    """

    name: ObjectName
    namespace: NamespaceName | None = None
    generate_name: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: Int64 | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: Int64 | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: tuple[OwnerReference, ...] = ()
    finalizers: tuple[str, ...] = ()
    managed_fields: tuple[FreeForm, ...] = ()


class _Object(_Struct, frozen=True):
    """A top-level manifest object: ``metadata`` plus the kind's own fields."""

    KIND: ClassVar[str] = ""

    metadata: ObjectMeta

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """``metadata.namespace``, ``"default"`` when unset."""
        return self.metadata.namespace or "default"

    @property
    def id(self) -> str:
        """``"<namespace>/<name>"``, KubeEdge's resource id."""
        return f"{self.namespace}/{self.metadata.name}"

    def to_dict(self) -> dict[str, Any]:
        """Encode as a JSON/YAML-able mapping with ``apiVersion`` and ``kind`` first.

        Unset optional fields are left out, so ``to_dict()`` of a loaded object gives back the
        loaded mapping (minus pruned unknown fields, with quirks corrected and ``namespace``
        filled in).
        """
        body = msgspec.json.decode(msgspec.json.encode(self))
        return {"apiVersion": API_VERSION, "kind": self.KIND, **body}


# --- Device -----------------------------------------------------------------------------------


class DeviceModelRef(_Struct, frozen=True):
    """``spec.deviceModelRef``: the model, in the device's namespace."""

    name: ObjectName


class TwinValue(_Struct, frozen=True):
    """A twin side: ``desired``, ``reported`` or ``observedDesired``."""

    value: str
    metadata: dict[str, str] | None = None


class Visitors(_Struct, frozen=True):
    """How a mapper reaches one property: the protocol and its free-form ``configData``."""

    protocol_name: str | None = None
    config_data: FreeForm | None = None


class PushHTTP(_Struct, frozen=True):
    """``pushMethod.http``."""

    host_name: str | None = None
    port: Int64 | None = None
    request_path: str | None = None
    timeout: Int64 | None = None


class PushMQTT(_Struct, frozen=True):
    """``pushMethod.mqtt``."""

    address: str | None = None
    topic: str | None = None
    qos: Qos | None = None
    retained: bool | None = None


class PushOTEL(_Struct, frozen=True):
    """``pushMethod.otel``."""

    endpoint_url: str | None = msgspec.field(default=None, name="endpointURL")


class Influxdb2ClientConfig(_Struct, frozen=True):
    """``dbMethod.influxdb2.influxdb2ClientConfig``."""

    url: str | None = None
    org: str | None = None
    bucket: str | None = None


class Influxdb2DataConfig(_Struct, frozen=True):
    """``dbMethod.influxdb2.influxdb2DataConfig``."""

    measurement: str | None = None
    tag: dict[str, str] | None = None
    field_key: str | None = None


class DBInfluxdb2(_Struct, frozen=True):
    """``dbMethod.influxdb2``."""

    influxdb2_client_config: Influxdb2ClientConfig | None = None
    influxdb2_data_config: Influxdb2DataConfig | None = None


class RedisClientConfig(_Struct, frozen=True):
    """``dbMethod.redis.redisClientConfig`` (``poolsize`` is lower-case in the CRD)."""

    addr: str | None = None
    db: Int64 | None = None
    poolsize: Int64 | None = None
    min_idle_conns: Int64 | None = None


class DBRedis(_Struct, frozen=True):
    """``dbMethod.redis``."""

    redis_client_config: RedisClientConfig | None = None


class TDEngineClientConfig(_Struct, frozen=True):
    """``dbMethod.TDEngine.TDEngineClientConfig``."""

    addr: str | None = None
    db_name: str | None = None


class DBTDEngine(_Struct, frozen=True):
    """``dbMethod.TDEngine`` (capitalised in the CRD)."""

    tdengine_client_config: TDEngineClientConfig | None = msgspec.field(
        default=None, name="TDEngineClientConfig"
    )


class MySQLClientConfig(_Struct, frozen=True):
    """``dbMethod.mysql.mysqlClientConfig``."""

    addr: str | None = None
    database: str | None = None
    user_name: str | None = None


class DBMySQL(_Struct, frozen=True):
    """``dbMethod.mysql``."""

    mysql_client_config: MySQLClientConfig | None = None


class DBMethod(_Struct, frozen=True):
    """``pushMethod.dbMethod``: the databases a mapper writes samples to."""

    influxdb2: DBInfluxdb2 | None = None
    redis: DBRedis | None = None
    tdengine: DBTDEngine | None = msgspec.field(default=None, name="TDEngine")
    mysql: DBMySQL | None = None


class PushMethod(_Struct, frozen=True):
    """``properties[].pushMethod``: where a mapper pushes a property's samples."""

    http: PushHTTP | None = None
    mqtt: PushMQTT | None = None
    otel: PushOTEL | None = None
    db_method: DBMethod | None = None
    anomaly_detection: FreeForm | None = None


class DeviceProperty(_Struct, frozen=True):
    """``Device.spec.properties[]``: one property of a device instance.

    ``visitors`` may be left out when the model property supplies them (KubeEdge v1.22).
    Cycles are milliseconds; ``None`` and ``0`` mean the mapper's default (1 s).
    """

    name: PropertyName
    desired: TwinValue | None = None
    visitors: Visitors | None = None
    report_cycle: Cycle | None = None
    collect_cycle: Cycle | None = None
    report_to_cloud: bool | None = None
    push_method: PushMethod | None = None


class ProtocolConfig(_Struct, frozen=True):
    """``Device.spec.protocol``: the protocol (it routes the device to a mapper) and its config."""

    protocol_name: str
    config_data: FreeForm | None = None


class DeviceMethod(_Struct, frozen=True):
    """``Device.spec.methods[]``: a named write action over some properties."""

    name: str
    description: str | None = None
    property_names: tuple[str, ...] = ()


class StateReport(_Struct, frozen=True):
    """``Device.spec.stateReport`` (v1.23): whether and how often the device state is reported."""

    report_to_cloud: bool | None = None
    report_cycle: Cycle | None = None


class DeviceStatusOld(_Struct, frozen=True):
    """The typed keys of the deprecated, otherwise free-form ``Device.status``.

    ``Device.status`` stays a dict (the CRD preserves unknown fields there); these are the keys
    the validator checks and :attr:`Device.state_report` reads.
    """

    report_to_cloud: bool | None = None
    report_cycle: Cycle | None = None


class DeviceSpec(_Struct, frozen=True):
    """``Device.spec``."""

    device_model_ref: DeviceModelRef
    protocol: ProtocolConfig
    node_name: str | None = None
    properties: tuple[DeviceProperty, ...] = ()
    methods: tuple[DeviceMethod, ...] = ()
    state_report: StateReport | None = None


class Device(_Object, frozen=True):
    """A ``devices.kubeedge.io/v1beta1`` Device: one device instance of a model."""

    KIND: ClassVar[str] = "Device"

    spec: DeviceSpec
    status: Annotated[FreeForm, msgspec.Meta(extra={"known": DeviceStatusOld})] | None = None

    @property
    def model_id(self) -> str:
        """``"<namespace>/<deviceModelRef.name>"``: the model is in the device's namespace."""
        return f"{self.namespace}/{self.spec.device_model_ref.name}"

    @property
    def protocol_name(self) -> str:
        """``spec.protocol.protocolName``: the mapper protocol the device is routed to."""
        return self.spec.protocol.protocol_name

    @property
    def state_report(self) -> StateReport:
        """The state-report settings in effect: ``spec.stateReport``, else ``status`` (pre-1.23)."""
        if self.spec.state_report is not None:
            return self.spec.state_report
        status = self.status or {}
        cycle = status.get("reportCycle")
        to_cloud = status.get("reportToCloud")
        return StateReport(
            report_to_cloud=to_cloud if isinstance(to_cloud, bool) else None,
            report_cycle=cycle if isinstance(cycle, int) and not isinstance(cycle, bool) else None,
        )

    def get_property(self, name: str) -> DeviceProperty | None:
        """The property called ``name``, or ``None``."""
        return next((p for p in self.spec.properties if p.name == name), None)


# --- DeviceModel ------------------------------------------------------------------------------


class ModelProperty(_Struct, frozen=True):
    """``DeviceModel.spec.properties[]``: a property's type, access and default visitors."""

    name: PropertyName
    type: PropertyType
    access_mode: AccessMode
    description: str | None = None
    minimum: str | None = None
    maximum: str | None = None
    unit: str | None = None
    visitors: Visitors | None = None


class DeviceModelSpec(_Struct, frozen=True):
    """``DeviceModel.spec``."""

    protocol: str
    protocol_config_data: FreeForm | None = None
    properties: tuple[ModelProperty, ...] = ()


class DeviceModel(_Object, frozen=True):
    """A ``devices.kubeedge.io/v1beta1`` DeviceModel: the template of a kind of device."""

    KIND: ClassVar[str] = "DeviceModel"

    spec: DeviceModelSpec

    def get_property(self, name: str) -> ModelProperty | None:
        """The property called ``name``, or ``None``."""
        return next((p for p in self.spec.properties if p.name == name), None)


# --- DeviceStatus -----------------------------------------------------------------------------


class Twin(_Struct, frozen=True):
    """``DeviceStatus.status.twins[]``: a property's reported and observed desired values."""

    property_name: str
    reported: TwinValue | None = None
    observed_desired: TwinValue | None = None


class DeviceStatusSpec(_Struct, frozen=True):
    """``DeviceStatus.spec``: always empty (the Device is the owner reference)."""


class DeviceStatusStatus(_Struct, frozen=True):
    """``DeviceStatus.status``."""

    twins: tuple[Twin, ...] = ()
    state: str | None = None
    last_online_time: str | None = None
    extensions: FreeForm | None = None


class DeviceStatus(_Object, frozen=True):
    """A ``devices.kubeedge.io/v1beta1`` DeviceStatus (v1.23): twins and state of one Device."""

    KIND: ClassVar[str] = "DeviceStatus"

    spec: DeviceStatusSpec | None = None
    status: DeviceStatusStatus | None = None


Manifest: TypeAlias = Device | DeviceModel | DeviceStatus
"""Any object :func:`~twinplane.manifests.load_documents` returns."""

KINDS: Final[dict[str, type[Device] | type[DeviceModel] | type[DeviceStatus]]] = {
    "Device": Device,
    "DeviceModel": DeviceModel,
    "DeviceStatus": DeviceStatus,
}
"""The v1beta1 kinds by name."""
