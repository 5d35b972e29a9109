// Package modbusmapper is what a mapper-framework user writes for Modbus: the device panel
// (mapper-framework's global.DevPanel), the per-device loops and the driver. Registration,
// reporting, the DeviceMapperService server and the REST API are mapper-framework's own packages
// (pkg/grpcclient, pkg/grpcserver, pkg/httpserver), used as they are.
//
// The loops behave as mapper-framework's generated template does (_template/mapper/device in
// github.com/kubeedge/mapper-framework); each file says which part of the template it follows.
// The code is written here; none is copied.
package modbusmapper

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ProtocolConfig is a device's spec.protocol as mapper-framework hands it over:
// {"protocolName": "modbus", "configData": {...}}.
type ProtocolConfig struct {
	ProtocolName string         `json:"protocolName"`
	ConfigData   map[string]any `json:"configData"`
}

// Connection is where a device is: Modbus TCP (ip, port) or RTU (serialPort, baudRate, ...),
// and its unit (slaveID).
type Connection struct {
	URL  string
	Unit uint8
}

// VisitorConfig is a property's visitors as mapper-framework hands it over:
// {"protocolName": "modbus", "configData": {register, offset, limit, scale, isSwap,
// isRegisterSwap, dataType}}.
type VisitorConfig struct {
	ProtocolName string         `json:"protocolName"`
	ConfigData   map[string]any `json:"configData"`
}

// Visitor is a compiled VisitorConfig.
type Visitor struct {
	Register       string // CoilRegister, DiscreteInputRegister, HoldingRegister, InputRegister
	Offset         uint16
	Limit          uint16
	Scale          float64
	IsSwap         bool
	IsRegisterSwap bool
	DataType       string // int16, uint16, int32, uint32, int64, uint64, float32, float64, boolean, or the generic int/float/double
}

// ParseConnection reads the configData of spec.protocol.
func ParseConnection(raw []byte) (Connection, error) {
	var cfg ProtocolConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Connection{}, fmt.Errorf("protocol: %v", err)
	}
	data := cfg.ConfigData
	unit, err := integer(data, "slaveID", 1)
	if err != nil {
		return Connection{}, err
	}
	if unit < 0 || unit > 247 {
		return Connection{}, fmt.Errorf("protocol.configData.slaveID: %d is outside 0..247", unit)
	}
	mode := strings.ToUpper(text(data, "communicateMode", "TCP"))
	switch mode {
	case "TCP":
		ip := text(data, "ip", "")
		if ip == "" {
			return Connection{}, fmt.Errorf("protocol.configData.ip: missing")
		}
		port, err := integer(data, "port", 502)
		if err != nil {
			return Connection{}, err
		}
		return Connection{URL: fmt.Sprintf("tcp://%s:%d", ip, port), Unit: uint8(unit)}, nil
	case "RTU":
		serial := text(data, "serialPort", "")
		if serial == "" {
			return Connection{}, fmt.Errorf("protocol.configData.serialPort: missing")
		}
		return Connection{URL: "rtu://" + serial, Unit: uint8(unit)}, nil
	}
	return Connection{}, fmt.Errorf("protocol.configData.communicateMode: %q is not TCP or RTU", mode)
}

// ParseVisitor reads a property's visitors.
func ParseVisitor(raw []byte) (Visitor, error) {
	var cfg VisitorConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Visitor{}, fmt.Errorf("visitors: %v", err)
	}
	data := cfg.ConfigData
	offset, err := integer(data, "offset", 0)
	if err != nil {
		return Visitor{}, err
	}
	limit, err := integer(data, "limit", 1)
	if err != nil {
		return Visitor{}, err
	}
	if offset < 0 || offset > 65535 || limit < 0 || limit > 125 {
		return Visitor{}, fmt.Errorf("visitors.configData: offset %d or limit %d out of range", offset, limit)
	}
	if limit == 0 {
		limit = 1
	}
	scale, _ := number(data, "scale")
	v := Visitor{
		Register:       text(data, "register", "HoldingRegister"),
		Offset:         uint16(offset),
		Limit:          uint16(limit),
		Scale:          scale,
		IsSwap:         flag(data, "isSwap"),
		IsRegisterSwap: flag(data, "isRegisterSwap"),
		DataType:       strings.ToLower(text(data, "dataType", "")),
	}
	switch v.Register {
	case "CoilRegister", "DiscreteInputRegister", "HoldingRegister", "InputRegister":
	default:
		return Visitor{}, fmt.Errorf("visitors.configData.register: %q is not a Modbus register type", v.Register)
	}
	return v, nil
}

// The configData values come through protobuf Any and JSON: numbers may arrive as numbers or
// as numeric strings.

func integer(data map[string]any, key string, fallback int64) (int64, error) {
	value, ok := data[key]
	if !ok || value == nil {
		return fallback, nil
	}
	switch v := value.(type) {
	case float64:
		if v != math.Trunc(v) {
			return 0, fmt.Errorf("configData.%s: %v is not an integer", key, v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("configData.%s: %q is not an integer", key, v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("configData.%s: %v is not an integer", key, value)
}

func number(data map[string]any, key string) (float64, bool) {
	switch v := data[key].(type) {
	case float64:
		return v, true
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return n, err == nil
	}
	return 0, false
}

func text(data map[string]any, key, fallback string) string {
	switch v := data[key].(type) {
	case string:
		if v != "" {
			return v
		}
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fallback
}

func flag(data map[string]any, key string) bool {
	switch v := data[key].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}
