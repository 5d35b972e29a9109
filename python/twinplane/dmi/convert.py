"""Manifests to DMI v1beta1 messages, the way a Go mapper can take them.

EdgeCore's Go peers dereference sub-messages without nil checks (spec §1.4), so every message
built here always carries ``spec``, ``spec.protocol`` with ``configData``, each property's
``desired`` and ``visitors`` with a non-nil ``configData``, and ``status``. ``configData``
values are scalars wrapped as EdgeCore wraps them (:mod:`twinplane.dmi.anyvalue`); a nested
value raises :class:`~twinplane.errors.SpecError` naming the field, which the device manager
reports when the manifest is applied, never at send time.
"""

from __future__ import annotations

from collections.abc import Mapping

from twinplane.dmi.anyvalue import encode_config, fill_customized_value
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.errors import SpecError
from twinplane.manifests import Device, DeviceModel, overridden_device
from twinplane.manifests.types import DeviceProperty, PushMethod


def model_to_proto(model: DeviceModel) -> api_pb2.DeviceModel:
    """A ``DeviceModel`` message (the CRD's protocol and visitors are not carried in v1beta1)."""
    pb = api_pb2.DeviceModel(name=model.name, namespace=model.namespace)
    pb.spec.SetInParent()
    for p in model.spec.properties:
        pb.spec.properties.add(
            name=p.name,
            description=p.description or "",
            type=p.type,
            accessMode=p.access_mode,
            minimum=p.minimum or "",
            maximum=p.maximum or "",
            unit=p.unit or "",
        )
    return pb


def device_to_proto(
    device: Device, model: DeviceModel, desired: Mapping[str, str] | None = None
) -> api_pb2.Device:
    """A ``Device`` message after the model→instance override (spec §3.6).

    Args:
        device: The device manifest.
        model: Its model.
        desired: Current desired values by property (the twin's, which may be newer than the
            manifest's); ``None`` uses the manifest's.

    Raises:
        SpecError: A ``configData`` value is not a scalar (``path`` names it).
    """
    dev = overridden_device(device, model)
    pb = api_pb2.Device(name=dev.name, namespace=dev.namespace)
    spec = pb.spec
    spec.SetInParent()
    spec.deviceModelReference = dev.spec.device_model_ref.name
    spec.protocol.protocolName = dev.spec.protocol.protocol_name
    fill_customized_value(
        spec.protocol.configData, dev.spec.protocol.config_data or {}, "spec.protocol.configData"
    )
    for i, prop in enumerate(dev.spec.properties):
        _property(spec.properties.add(), prop, i, dev.protocol_name, desired)
    for method in dev.spec.methods:
        spec.methods.add(
            name=method.name,
            description=method.description or "",
            propertyNames=list(method.property_names),
        )
    pb.status.SetInParent()
    report = dev.state_report
    pb.status.reportToCloud = bool(report.report_to_cloud)
    pb.status.reportCycle = report.report_cycle or 0
    return pb


def config_errors(obj: Device | DeviceModel) -> list[SpecError]:
    """Every ``configData`` value of a manifest that a Go mapper cannot take, each with its path.

    :func:`device_to_proto` stops at the first bad value of a device after the model→instance
    override. This checks the object's own maps (a model's defaults reach every device of the
    model, so a model is checked as well) and finds every bad value, for apply-time errors.
    """
    maps: list[tuple[str, Mapping[str, object] | None]] = []
    if isinstance(obj, DeviceModel):
        maps.append(("spec.protocolConfigData", obj.spec.protocol_config_data))
        for i, model_prop in enumerate(obj.spec.properties):
            visitors = model_prop.visitors
            config = visitors.config_data if visitors else None
            maps.append((f"spec.properties[{i}].visitors.configData", config))
    else:
        maps.append(("spec.protocol.configData", obj.spec.protocol.config_data))
        for i, prop in enumerate(obj.spec.properties):
            path = f"spec.properties[{i}]"
            config = prop.visitors.config_data if prop.visitors else None
            maps.append((f"{path}.visitors.configData", config))
            if prop.push_method is not None:
                anomaly = prop.push_method.anomaly_detection
                maps.append((f"{path}.pushMethod.anomalyDetection", anomaly))
    errors = []
    for path, data in maps:
        for key, value in (data or {}).items():
            try:
                encode_config({key: value}, path)
            except SpecError as err:
                errors.append(err)
    return errors


def _property(
    pb: api_pb2.DeviceProperty,
    prop: DeviceProperty,
    index: int,
    protocol: str,
    desired: Mapping[str, str] | None,
) -> None:
    path = f"spec.properties[{index}]"
    pb.name = prop.name
    pb.desired.SetInParent()
    if desired is not None:
        pb.desired.value = desired.get(prop.name, "")
    elif prop.desired is not None:
        pb.desired.value = prop.desired.value
    if prop.desired is not None and prop.desired.metadata:
        pb.desired.metadata.update(prop.desired.metadata)
    visitors = prop.visitors
    pb.visitors.protocolName = (visitors.protocol_name if visitors else None) or protocol
    config = (visitors.config_data if visitors else None) or {}
    fill_customized_value(pb.visitors.configData, config, f"{path}.visitors.configData")
    pb.reportCycle = prop.report_cycle or 0
    pb.collectCycle = prop.collect_cycle or 0
    pb.reportToCloud = bool(prop.report_to_cloud)
    if prop.push_method is not None:
        _push_method(pb.pushMethod, prop.push_method, f"{path}.pushMethod")


def _push_method(pb: api_pb2.PushMethod, push: PushMethod, path: str) -> None:
    pb.SetInParent()
    if push.http is not None:
        h = push.http
        pb.http.SetInParent()
        pb.http.hostname = h.host_name or ""
        pb.http.port = h.port or 0
        pb.http.requestpath = h.request_path or ""
        pb.http.timeout = h.timeout or 0
    if push.mqtt is not None:
        m = push.mqtt
        pb.mqtt.SetInParent()
        pb.mqtt.address = m.address or ""
        pb.mqtt.topic = m.topic or ""
        pb.mqtt.qos = m.qos or 0
        pb.mqtt.retained = bool(m.retained)
    if push.otel is not None:
        pb.otel.SetInParent()
        pb.otel.endpointURL = push.otel.endpoint_url or ""
    if push.db_method is not None:
        _db_method(pb.dbMethod, push)
    if push.anomaly_detection is not None:
        fill_customized_value(
            pb.anomalyDetection, push.anomaly_detection, f"{path}.anomalyDetection"
        )


def _db_method(pb: api_pb2.DBMethod, push: PushMethod) -> None:
    db = push.db_method
    assert db is not None  # noqa: S101 - checked by the caller
    pb.SetInParent()
    if db.influxdb2 is not None:
        influx = pb.influxdb2
        influx.SetInParent()
        if (c := db.influxdb2.influxdb2_client_config) is not None:
            influx.influxdb2ClientConfig.SetInParent()
            influx.influxdb2ClientConfig.url = c.url or ""
            influx.influxdb2ClientConfig.org = c.org or ""
            influx.influxdb2ClientConfig.bucket = c.bucket or ""
        if (d := db.influxdb2.influxdb2_data_config) is not None:
            influx.influxdb2DataConfig.SetInParent()
            influx.influxdb2DataConfig.measurement = d.measurement or ""
            influx.influxdb2DataConfig.tag.update(d.tag or {})
            influx.influxdb2DataConfig.fieldKey = d.field_key or ""
    if db.redis is not None and (r := db.redis.redis_client_config) is not None:
        pb.redis.redisClientConfig.SetInParent()
        pb.redis.redisClientConfig.addr = r.addr or ""
        pb.redis.redisClientConfig.db = r.db or 0
        pb.redis.redisClientConfig.poolsize = r.poolsize or 0
        pb.redis.redisClientConfig.minIdleConns = r.min_idle_conns or 0
    if db.tdengine is not None and (t := db.tdengine.tdengine_client_config) is not None:
        pb.tdengine.tdEngineClientConfig.SetInParent()
        pb.tdengine.tdEngineClientConfig.addr = t.addr or ""
        pb.tdengine.tdEngineClientConfig.dbname = t.db_name or ""
    if db.mysql is not None and (m := db.mysql.mysql_client_config) is not None:
        pb.mysql.mysqlClientConfig.SetInParent()
        pb.mysql.mysqlClientConfig.addr = m.addr or ""
        pb.mysql.mysqlClientConfig.database = m.database or ""
        pb.mysql.mysqlClientConfig.userName = m.user_name or ""
