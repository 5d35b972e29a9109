"""The mapper runtime on its own: devices, buses and the engine, with no server and no peer."""

from __future__ import annotations

from pathlib import Path

from mapper_helpers import manifests, mapper_config, virtual_device, virtual_model

from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.drivers.virtual import VirtualClient, VirtualDriver
from twinplane.manifests.load import load_strict
from twinplane.mapper.register import load_answer
from twinplane.mapper.runtime import MapperRuntime
from twinplane.mapper.sinks import DataPlane
from waits import until


def register_answer() -> api_pb2.MapperRegisterResponse:
    """A MapperRegister answer with the virtual model and two devices."""
    loaded = load_strict(manifests(virtual_model(), virtual_device("v1"), virtual_device("v2")))
    (model,) = loaded.models
    answer = api_pb2.MapperRegisterResponse(modelList=[model_to_proto(model)])
    answer.deviceList.extend(device_to_proto(d, model) for d in loaded.devices)
    return answer


async def test_runtime_runs_devices_without_serving_anything(tmp_path: Path) -> None:
    """Loaded devices poll into the engine; no socket is served; removal listeners hear stops."""
    config = mapper_config(tmp_path, tmp_path / "dmi.sock")
    runtime = MapperRuntime(config, VirtualDriver(), DataPlane())
    removed: list[str] = []
    runtime.add_removal_listener(removed.append)
    try:
        await load_answer(runtime, register_answer())
        assert set(runtime.devices) == {"default/v1", "default/v2"}
        await until(lambda: len(runtime.engine.report()) > 0, "samples in the engine")
        assert await runtime.remove_device("default/v2")
        assert removed == ["default/v2"]
        assert not config.socket_path.exists()
    finally:
        await runtime.stop()
    assert runtime.devices == {}


async def test_a_device_registered_again_with_a_new_desired_value_writes_it(
    tmp_path: Path,
) -> None:
    """RegisterDevice of a running device applies what changed, as UpdateDevice does.

    A device manager that restarted sends its devices again with RegisterDevice; a desired value
    set meanwhile is written, without restarting the device; the same message again is a no-op.
    """
    config = mapper_config(tmp_path, tmp_path / "dmi.sock")
    runtime = MapperRuntime(config, VirtualDriver(), DataPlane())
    loaded = load_strict(manifests(virtual_model(), virtual_device("v1")))
    (model,) = loaded.models
    (device,) = loaded.devices
    try:
        runtime.models[model.id] = model_to_proto(model)
        first = device_to_proto(device, model, {})
        assert await runtime.register_device(first)
        running = runtime.devices["default/v1"]
        client = running.client
        assert isinstance(client, VirtualClient)
        assert not await runtime.register_device(first)  # unchanged: nothing happens
        changed = device_to_proto(device, model, {"setpoint": "42"})
        assert not await runtime.register_device(changed)
        assert runtime.devices["default/v1"] is running  # not restarted
        await until(lambda: running.bus.stats.writes == 1, "the new desired value written")
        assert running.bus.stats.write_errors == 0
        desired = runtime.engine.twins("default/v1")["setpoint"]["desired"]
        assert desired is not None
        assert desired["value"] == "42"
        assert client.inits == 1
    finally:
        await runtime.stop()
