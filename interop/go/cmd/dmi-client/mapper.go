package main

// Scenario "mapper": EdgeCore calling a mapper (DeviceMapperService), with KubeEdge's Modbus
// sample on a Modbus TCP server given by the test (unit 1, its coil 0 reading 1 at first).

import (
	"strconv"
	"sync"
	"time"

	dmi "github.com/kubeedge/api/apis/dmi/v1beta1"
)

// settleWithin bounds how long GetDevice is asked again until the device shows its values.
const settleWithin = 20 * time.Second

type mapperClient = dmi.DeviceMapperServiceClient

var newMapper = dmi.NewDeviceMapperServiceClient

func mapperScenario(p *printer, socket, host string, port int) {
	registerDevice := func(name string, d *dmi.Device) result {
		_, r := call(socket, newMapper, name, "RegisterDevice", &dmi.RegisterDeviceRequest{Device: d},
			mapperClient.RegisterDevice, func(resp *dmi.RegisterDeviceResponse) any {
				return map[string]string{"deviceName": resp.GetDeviceName(), "deviceNamespace": resp.GetDeviceNamespace()}
			})
		return r
	}
	createModel := func(name string, m *dmi.DeviceModel) result {
		_, r := call(socket, newMapper, name, "CreateDeviceModel", &dmi.CreateDeviceModelRequest{Model: m},
			mapperClient.CreateDeviceModel, func(resp *dmi.CreateDeviceModelResponse) any {
				return map[string]string{
					"deviceModelName":      resp.GetDeviceModelName(),
					"deviceModelNamespace": resp.GetDeviceModelNamespace(),
				}
			})
		return r
	}
	updateDevice := func(name string, d *dmi.Device) {
		_, r := call(socket, newMapper, name, "UpdateDevice", &dmi.UpdateDeviceRequest{Device: d},
			mapperClient.UpdateDevice, nil)
		p.print(r)
	}
	updateModel := func(name string, m *dmi.DeviceModel) {
		_, r := call(socket, newMapper, name, "UpdateDeviceModel", &dmi.UpdateDeviceModelRequest{Model: m},
			mapperClient.UpdateDeviceModel, nil)
		p.print(r)
	}
	removeDevice := func(name, device string) {
		req := &dmi.RemoveDeviceRequest{DeviceName: device, DeviceNamespace: namespace}
		_, r := call(socket, newMapper, name, "RemoveDevice", req, mapperClient.RemoveDevice, nil)
		p.print(r)
	}
	removeModel := func(name, model string) {
		req := &dmi.RemoveDeviceModelRequest{ModelName: model, ModelNamespace: namespace}
		_, r := call(socket, newMapper, name, "RemoveDeviceModel", req, mapperClient.RemoveDeviceModel, nil)
		p.print(r)
	}
	getDevice := func(name, device string) {
		_, r := callGet(socket, name, device)
		p.print(r)
	}
	quoted := sampleProtocol(host, strconv.Itoa(port)) // port: "5502", quoted as in the sample

	removeDevice("remove-unknown-device", "never-registered")
	p.print(createModel("create-model-nil", nil))
	p.print(createModel("create-model-empty-name", &dmi.DeviceModel{Namespace: namespace, Spec: sampleModel("").GetSpec()}))
	p.print(registerDevice("register-nil-device", nil))
	p.print(registerDevice("register-empty-name", sampleDevice("", quoted, "0")))
	// No spec, so no model reference; then a model that never comes (the mapper waits for it).
	p.print(registerDevice("register-nil-spec", &dmi.Device{Name: "no-spec", Namespace: namespace, Status: &dmi.DeviceStatus{}}))
	unknownModel := sampleDevice("unknown-model", quoted, "0")
	unknownModel.Spec.DeviceModelReference = "never-created"
	p.print(registerDevice("register-unknown-model", unknownModel))

	// EdgeCore sends a new device and its new model from two goroutines: the device may come
	// first, and the mapper waits for its model (mapper-framework: 3 tries, 1 s apart).
	var racing result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		racing = registerDevice("register-before-its-model", sampleDevice(deviceName, quoted, "0"))
	}()
	time.Sleep(300 * time.Millisecond)
	created := createModel("create-model", sampleModel("actual temperature"))
	wg.Wait()
	p.print(created)
	p.print(racing)

	p.print(waitSettled(socket, "get-device-registered", deviceName))
	p.print(registerDevice("register-again", sampleDevice(deviceName, quoted, "0")))
	// The port unquoted (a FloatValue) and a new desired value for the switch.
	updateDevice("update-device", sampleDevice(deviceName, sampleProtocol(host, float64(port)), "1"))
	p.print(waitSettled(socket, "get-device-updated", deviceName))
	updateDevice("update-device-nil", nil)
	updateModel("update-model", sampleModel("room temperature"))
	updateModel("update-model-nil", nil)

	// The nil configData of a CRD that has none: at the protocol, at a property's visitors.
	p.print(registerDevice("register-nil-protocol-config", sampleDevice("no-protocol-config", nil, "0")))
	noVisitor := sampleDevice("no-visitor-config", quoted, "0")
	noVisitor.Spec.Properties[0].Visitors.ConfigData = nil
	p.print(registerDevice("register-nil-visitor-config", noVisitor))

	getDevice("get-device-empty-name", "")
	getDevice("get-device-unknown", "never-registered")
	removeDevice("remove-device-empty-name", "")
	removeDevice("remove-device", deviceName)
	getDevice("get-device-removed", deviceName)
	removeModel("remove-model", modelName)
	removeModel("remove-model-unknown", "never-created")
	removeModel("remove-model-empty-name", "")
}

// waitSettled asks GetDevice until the device's twins show a value read from the device for
// every property, and for each property with a desired value that value (the mapper wrote it
// and read it back). An error answer ends the wait at once; the last answer is the result.
func waitSettled(socket, name, device string) result {
	deadline := time.Now().Add(settleWithin)
	attempts := 0
	for {
		attempts++
		resp, r := callGet(socket, name, device)
		r.Attempts = attempts
		if !r.OK || settled(resp) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func callGet(socket, name, device string) (*dmi.GetDeviceResponse, result) {
	req := &dmi.GetDeviceRequest{DeviceName: device, DeviceNamespace: namespace}
	return call(socket, newMapper, name, "GetDevice", req, mapperClient.GetDevice,
		func(resp *dmi.GetDeviceResponse) any {
			if resp.GetDevice() == nil {
				return map[string]any{"deviceSet": false}
			}
			return map[string]any{"deviceSet": true, "device": summarizeDevice(resp.GetDevice())}
		})
}

func settled(resp *dmi.GetDeviceResponse) bool {
	d := resp.GetDevice()
	reported := map[string]string{}
	for _, t := range d.GetStatus().GetTwins() {
		reported[t.GetPropertyName()] = t.GetReported().GetValue()
	}
	for _, prop := range d.GetSpec().GetProperties() {
		got := reported[prop.GetName()]
		if want := prop.GetDesired().GetValue(); got == "" || (want != "" && got != want) {
			return false
		}
	}
	return len(d.GetSpec().GetProperties()) > 0
}
