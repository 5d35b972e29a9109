package main

// The messages as KubeEdge's peers build them, and the answer fields the scenarios print.
//
// Devices and models follow KubeEdge's v1beta1 Modbus sample (temperature-model and
// temperature-instance) as EdgeCore converts the CRDs for a mapper: the CRD's JSON turned into the
// DMI message, so `status`, every property's `desired` and `visitors` are always present (the
// CRD has them as plain structs) while a `configData` the CRD lacks stays nil; each configData
// scalar packed in google.protobuf.Any in a well-known wrapper, where every JSON number is a Go
// float64 and so reaches the mapper as a 32-bit FloatValue.

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	dmi "github.com/kubeedge/api/apis/dmi/v1beta1"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The sample's names.
const (
	namespace      = "default"
	modelName      = "temperature-model"
	deviceName     = "temperature-instance"
	temperature    = "temperature"
	switchProperty = "temperature-switch"
	protocolName   = "modbus"
)

// packAny wraps one configData scalar as EdgeCore does: a string in StringValue, a JSON number
// (float64) in FloatValue, a boolean in BoolValue. Anything else EdgeCore refuses to convert, so
// no scenario sends it.
func packAny(v any) *anypb.Any {
	var wrapped *anypb.Any
	var err error
	switch x := v.(type) {
	case string:
		wrapped, err = anypb.New(wrapperspb.String(x))
	case float64:
		wrapped, err = anypb.New(wrapperspb.Float(float32(x)))
	case bool:
		wrapped, err = anypb.New(wrapperspb.Bool(x))
	default:
		panic(fmt.Sprintf("configData value %v (%T): EdgeCore converts only strings, numbers and booleans", v, v))
	}
	if err != nil {
		panic(err)
	}
	return wrapped
}

// customized is a CRD configData map as a DMI CustomizedValue; nil for a CRD without one.
func customized(data map[string]any) *dmi.CustomizedValue {
	if data == nil {
		return nil
	}
	out := &dmi.CustomizedValue{Data: map[string]*anypb.Any{}}
	for k, v := range data {
		out.Data[k] = packAny(v)
	}
	return out
}

// sampleModel is the sample's DeviceModel as EdgeCore sends it (the CRD's protocol and
// visitors have no DMI field; commands are never filled).
func sampleModel(description string) *dmi.DeviceModel {
	return &dmi.DeviceModel{
		Name:      modelName,
		Namespace: namespace,
		Spec: &dmi.DeviceModelSpec{
			Properties: []*dmi.ModelProperty{
				{
					Name: temperature, Description: description, Type: "FLOAT", AccessMode: "ReadWrite",
					Minimum: "0", Maximum: "100.0", Unit: "Celsius",
				},
				{Name: switchProperty, Type: "INT", AccessMode: "ReadWrite"},
			},
		},
	}
}

// sampleProtocol is the sample's protocol configData on a given Modbus server; port is the
// port as the manifest writes it (the sample quotes it: a string; unquoted: a float64).
func sampleProtocol(host string, port any) map[string]any {
	return map[string]any{"communicateMode": "TCP", "port": port, "slaveID": 1.0, "ip": host}
}

// sampleDevice is the sample's Device as EdgeCore converts it; switchDesired is the desired
// value of temperature-switch (coil 0), protocolConfig its spec.protocol.configData.
func sampleDevice(name string, protocolConfig map[string]any, switchDesired string) *dmi.Device {
	return &dmi.Device{
		Name:      name,
		Namespace: namespace,
		Spec: &dmi.DeviceSpec{
			DeviceModelReference: modelName,
			Protocol:             &dmi.ProtocolConfig{ProtocolName: protocolName, ConfigData: customized(protocolConfig)},
			Properties: []*dmi.DeviceProperty{
				sampleProperty(temperature, "", map[string]any{
					"dataType": "float", "register": "HoldingRegister", "offset": 0.0, "limit": 1.0,
					"scale": 0.1, "isSwap": false, "isRegisterSwap": false, "max": 100.0, "min": 1.0,
				}),
				sampleProperty(switchProperty, switchDesired, map[string]any{
					"dataType": "int", "register": "CoilRegister", "offset": 0.0, "limit": 1.0, "scale": 1.0,
				}),
			},
			Methods: []*dmi.DeviceMethod{
				{Name: "SwitchControl", Description: "control the switch of the device", PropertyNames: []string{switchProperty}},
				{Name: "UpdateTemperature", PropertyNames: []string{temperature}},
			},
		},
		// The CRD's status is a plain struct: EdgeCore always sends it.
		Status: &dmi.DeviceStatus{},
	}
}

// sampleProperty is one property as EdgeCore converts it: desired always present (its value
// may be empty), visitors present, the collect and report cycles short for a test (ms).
func sampleProperty(name, desired string, visitor map[string]any) *dmi.DeviceProperty {
	return &dmi.DeviceProperty{
		Name:          name,
		Desired:       &dmi.TwinProperty{Value: desired},
		Visitors:      &dmi.VisitorConfig{ProtocolName: protocolName, ConfigData: customized(visitor)},
		CollectCycle:  200,
		ReportCycle:   1000,
		ReportToCloud: true,
	}
}

// frameworkTwin is one twin as mapper-framework reports it (parse.ConvMsgTwinToGrpc): both
// sides present, metadata type from the desired value's metadata (usually empty) and the
// timestamp always empty.
func frameworkTwin(property, reported, observedDesired string) *dmi.Twin {
	meta := func() map[string]string { return map[string]string{"type": "", "timestamp": ""} }
	return &dmi.Twin{
		PropertyName:    property,
		Reported:        &dmi.TwinProperty{Value: reported, Metadata: meta()},
		ObservedDesired: &dmi.TwinProperty{Value: observedDesired, Metadata: meta()},
	}
}

// anyValue is one decoded configData entry.
type anyValue struct {
	// Type is the packed message's full name (google.protobuf.FloatValue, ...).
	Type string `json:"type"`
	// Value is the wrapper's value; a FloatValue as the shortest decimal of its float32.
	Value any `json:"value,omitempty"`
	// Error says why the value could not be decoded.
	Error string `json:"error,omitempty"`
}

func decodeAny(a *anypb.Any) anyValue {
	out := anyValue{Type: string(a.MessageName())}
	msg, err := a.UnmarshalNew()
	if err != nil {
		out.Error = err.Error()
		return out
	}
	switch m := msg.(type) {
	case *wrapperspb.StringValue:
		out.Value = m.GetValue()
	case *wrapperspb.BoolValue:
		out.Value = m.GetValue()
	case *wrapperspb.Int32Value:
		out.Value = m.GetValue()
	case *wrapperspb.Int64Value:
		out.Value = m.GetValue()
	case *wrapperspb.FloatValue:
		out.Value = json.Number(strconv.FormatFloat(float64(m.GetValue()), 'g', -1, 32))
	default:
		out.Error = "not one of the wrappers mapper-framework decodes"
	}
	return out
}

// configOf is a CustomizedValue decoded; nil when the message is absent.
func configOf(cv *dmi.CustomizedValue) map[string]anyValue {
	if cv == nil {
		return nil
	}
	out := make(map[string]anyValue, len(cv.GetData()))
	for k, v := range cv.GetData() {
		out[k] = decodeAny(v)
	}
	return out
}

// propertySummary is what a mapper would dereference in one device property.
type propertySummary struct {
	Name             string              `json:"name"`
	DesiredSet       bool                `json:"desiredSet"`
	Desired          string              `json:"desired"`
	VisitorsSet      bool                `json:"visitorsSet"`
	VisitorProtocol  string              `json:"visitorProtocol"`
	VisitorConfigSet bool                `json:"visitorConfigSet"`
	VisitorConfig    map[string]anyValue `json:"visitorConfig"`
	CollectCycle     int64               `json:"collectCycle"`
	ReportCycle      int64               `json:"reportCycle"`
	ReportToCloud    bool                `json:"reportToCloud"`
}

// twinSummary is one twin of a device's status.
type twinSummary struct {
	Property            string            `json:"property"`
	ReportedSet         bool              `json:"reportedSet"`
	Reported            string            `json:"reported"`
	ReportedMeta        map[string]string `json:"reportedMeta"`
	ObservedDesiredSet  bool              `json:"observedDesiredSet"`
	ObservedDesired     string            `json:"observedDesired"`
	ObservedDesiredMeta map[string]string `json:"observedDesiredMeta"`
}

// deviceSummary is a Device as a mapper sees it, nil sub-messages told apart from empty ones.
type deviceSummary struct {
	Namespace         string              `json:"namespace"`
	Name              string              `json:"name"`
	SpecSet           bool                `json:"specSet"`
	Model             string              `json:"model"`
	ProtocolSet       bool                `json:"protocolSet"`
	Protocol          string              `json:"protocol"`
	ProtocolConfigSet bool                `json:"protocolConfigSet"`
	ProtocolConfig    map[string]anyValue `json:"protocolConfig"`
	Properties        []propertySummary   `json:"properties"`
	Methods           map[string][]string `json:"methods"`
	StatusSet         bool                `json:"statusSet"`
	Twins             []twinSummary       `json:"twins"`
}

func summarizeDevice(d *dmi.Device) deviceSummary {
	spec := d.GetSpec()
	out := deviceSummary{
		Namespace:         d.GetNamespace(),
		Name:              d.GetName(),
		SpecSet:           spec != nil,
		Model:             spec.GetDeviceModelReference(),
		ProtocolSet:       spec.GetProtocol() != nil,
		Protocol:          spec.GetProtocol().GetProtocolName(),
		ProtocolConfigSet: spec.GetProtocol().GetConfigData() != nil,
		ProtocolConfig:    configOf(spec.GetProtocol().GetConfigData()),
		Properties:        []propertySummary{},
		Methods:           map[string][]string{},
		StatusSet:         d.GetStatus() != nil,
		Twins:             []twinSummary{},
	}
	for _, p := range spec.GetProperties() {
		out.Properties = append(out.Properties, propertySummary{
			Name:             p.GetName(),
			DesiredSet:       p.GetDesired() != nil,
			Desired:          p.GetDesired().GetValue(),
			VisitorsSet:      p.GetVisitors() != nil,
			VisitorProtocol:  p.GetVisitors().GetProtocolName(),
			VisitorConfigSet: p.GetVisitors().GetConfigData() != nil,
			VisitorConfig:    configOf(p.GetVisitors().GetConfigData()),
			CollectCycle:     p.GetCollectCycle(),
			ReportCycle:      p.GetReportCycle(),
			ReportToCloud:    p.GetReportToCloud(),
		})
	}
	for _, m := range spec.GetMethods() {
		out.Methods[m.GetName()] = append([]string{}, m.GetPropertyNames()...)
	}
	for _, t := range d.GetStatus().GetTwins() {
		out.Twins = append(out.Twins, twinSummary{
			Property:            t.GetPropertyName(),
			ReportedSet:         t.GetReported() != nil,
			Reported:            t.GetReported().GetValue(),
			ReportedMeta:        t.GetReported().GetMetadata(),
			ObservedDesiredSet:  t.GetObservedDesired() != nil,
			ObservedDesired:     t.GetObservedDesired().GetValue(),
			ObservedDesiredMeta: t.GetObservedDesired().GetMetadata(),
		})
	}
	sort.Slice(out.Twins, func(i, j int) bool { return out.Twins[i].Property < out.Twins[j].Property })
	return out
}

// modelSummary is a DeviceModel as a mapper sees it.
type modelSummary struct {
	Namespace  string              `json:"namespace"`
	Name       string              `json:"name"`
	SpecSet    bool                `json:"specSet"`
	Properties []map[string]string `json:"properties"`
	Commands   int                 `json:"commands"`
}

func summarizeModel(m *dmi.DeviceModel) modelSummary {
	out := modelSummary{
		Namespace:  m.GetNamespace(),
		Name:       m.GetName(),
		SpecSet:    m.GetSpec() != nil,
		Properties: []map[string]string{},
		Commands:   len(m.GetSpec().GetCommands()),
	}
	for _, p := range m.GetSpec().GetProperties() {
		out.Properties = append(out.Properties, map[string]string{
			"name": p.GetName(), "description": p.GetDescription(), "type": p.GetType(),
			"accessMode": p.GetAccessMode(), "minimum": p.GetMinimum(), "maximum": p.GetMaximum(),
			"unit": p.GetUnit(),
		})
	}
	return out
}
