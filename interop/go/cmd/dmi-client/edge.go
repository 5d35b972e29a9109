package main

// Scenario "edge": a mapper-framework mapper calling the device manager (DeviceManagerService).
//
// The device manager is expected to hold KubeEdge's Modbus sample (temperature-model and
// default/temperature-instance); no device named default/no-such-device.

import (
	dmi "github.com/kubeedge/api/apis/dmi/v1beta1"
)

// Mapper-framework's MapperInfo, from its config.yaml template (the generator names a mapper
// "<Name>-mapper", capitalised).
const (
	mapperName       = "Modbus-mapper"
	mapperVersion    = "v1.13.0"
	mapperAPIVersion = "v1.0.0"
)

// frameworkMapper is MapperInfo as mapper-framework's grpcclient.RegisterMapper fills it: the
// config's name, version, api_version and protocol, its own socket path as raw bytes, state "ok".
func frameworkMapper(protocol, address string) *dmi.MapperInfo {
	return &dmi.MapperInfo{
		Name:       mapperName,
		Version:    mapperVersion,
		ApiVersion: mapperAPIVersion,
		Protocol:   protocol,
		Address:    []byte(address),
		State:      "ok",
	}
}

type manager = dmi.DeviceManagerServiceClient

func edgeScenario(p *printer, socket, address string) {
	register := func(name string, req *dmi.MapperRegisterRequest) {
		_, r := call(socket, dmi.NewDeviceManagerServiceClient, name, "MapperRegister", req,
			manager.MapperRegister, registerAnswer)
		p.print(r)
	}
	mapper := frameworkMapper(protocolName, address)
	register("register-nil-mapper", &dmi.MapperRegisterRequest{WithData: true})
	register("register-empty-protocol", &dmi.MapperRegisterRequest{WithData: true, Mapper: frameworkMapper("", address)})
	register("register-without-data", &dmi.MapperRegisterRequest{WithData: false, Mapper: mapper})
	register("register-with-data", &dmi.MapperRegisterRequest{WithData: true, Mapper: mapper})

	report := func(name string, req *dmi.ReportDeviceStatusRequest) {
		_, r := call(socket, dmi.NewDeviceManagerServiceClient, name, "ReportDeviceStatus", req,
			manager.ReportDeviceStatus, nil)
		p.print(r)
	}
	twins := func(device, ns string, t ...*dmi.Twin) *dmi.ReportDeviceStatusRequest {
		return &dmi.ReportDeviceStatusRequest{
			DeviceName: device, DeviceNamespace: ns, ReportedDevice: &dmi.DeviceStatus{Twins: t},
		}
	}
	// mapper-framework reports one twin per call, per property per collect cycle; the
	// observedDesired it holds is the desired value it got with the device.
	report("report-temperature", twins(deviceName, namespace, frameworkTwin(temperature, "21.5", "")))
	report("report-switch", twins(deviceName, namespace, frameworkTwin(switchProperty, "1", "1")))
	// One call may carry many twins (EdgeCore splits them); then the nil and empty shapes, none
	// of which carries a value to apply.
	report("report-two-twins", twins(deviceName, namespace,
		frameworkTwin(temperature, "22.5", ""), frameworkTwin(switchProperty, "1", "1")))
	report("report-nil-reported-device", &dmi.ReportDeviceStatusRequest{DeviceName: deviceName, DeviceNamespace: namespace})
	report("report-empty-twins", twins(deviceName, namespace))
	report("report-twin-without-reported", twins(deviceName, namespace,
		&dmi.Twin{PropertyName: temperature, ObservedDesired: &dmi.TwinProperty{Value: "30"}}))
	// Without observedDesired (which EdgeCore dereferences), the reported value still counts.
	report("report-twin-without-observed-desired", twins(deviceName, namespace,
		&dmi.Twin{PropertyName: switchProperty, Reported: &dmi.TwinProperty{Value: "0"}}))
	// Before v1.16 no namespace was sent: the device manager takes "default".
	report("report-empty-namespace", twins(deviceName, "", frameworkTwin(temperature, "23.5", "")))
	report("report-unknown-device", twins("no-such-device", namespace, frameworkTwin(temperature, "21.5", "")))
	report("report-unknown-property", twins(deviceName, namespace, frameworkTwin("humidity", "40", "")))
	report("report-value-not-an-int", twins(deviceName, namespace, frameworkTwin(switchProperty, "on", "")))
	report("report-empty-name", twins("", namespace, frameworkTwin(temperature, "21.5", "")))

	state := func(name, device, ns, value string) {
		req := &dmi.ReportDeviceStatesRequest{DeviceName: device, DeviceNamespace: ns, State: value}
		_, r := call(socket, dmi.NewDeviceManagerServiceClient, name, "ReportDeviceStates", req,
			manager.ReportDeviceStates, nil)
		p.print(r)
	}
	// EdgeCore's five states, mapper-framework's "disconnected", and a state in capitals; the
	// last one accepted leaves the device online.
	for _, s := range []string{"ok", "online", "offline", "unhealthy", "unknown", "disconnected"} {
		state("state-"+s, deviceName, namespace, s)
	}
	state("state-upper-case", deviceName, namespace, "ONLINE")
	state("state-not-a-state", deviceName, namespace, "sleeping")
	state("state-empty", deviceName, namespace, "")
	state("state-empty-name", "", namespace, "online")
	state("state-unknown-device", "no-such-device", namespace, "online")
}

// registerAnswer is a MapperRegister response: each device as a mapper would read it, and
// each model (the lists are parallel: model i belongs to device i).
func registerAnswer(resp *dmi.MapperRegisterResponse) any {
	devices := []deviceSummary{}
	for _, d := range resp.GetDeviceList() {
		devices = append(devices, summarizeDevice(d))
	}
	models := []modelSummary{}
	for _, m := range resp.GetModelList() {
		models = append(models, summarizeModel(m))
	}
	return map[string]any{"devices": devices, "models": models}
}
