package modbusmapper

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/kubeedge/mapper-framework/pkg/common"
	"github.com/simonvetter/modbus"
)

// Timeout bounds one Modbus transaction (and a connect).
const Timeout = time.Second

// Client is one device's driver: what the template calls CustomizedClient
// (_template/mapper/driver). One connection per device, as the template's NewClient per device
// start makes one; its mutex serialises the device's loops, as the template's deviceMutex does.
type Client struct {
	mu     sync.Mutex
	conn   Connection
	client *modbus.ModbusClient
	state  string
}

// NewClient makes the driver of a device; nothing is opened until InitDevice.
func NewClient(conn Connection) *Client {
	return &Client{conn: conn, state: common.DeviceStatusUnknown}
}

// InitDevice opens the connection (a failure leaves it to the next read to try again).
func (c *Client) InitDevice() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open()
}

func (c *Client) open() error {
	if c.client != nil {
		return nil
	}
	client, err := modbus.NewClient(&modbus.ClientConfiguration{URL: c.conn.URL, Timeout: Timeout})
	if err != nil {
		return err
	}
	if err := client.Open(); err != nil {
		c.state = common.DeviceStatusOffline
		return fmt.Errorf("connect %s: %w", c.conn.URL, err)
	}
	if err := client.SetUnitId(c.conn.Unit); err != nil {
		_ = client.Close()
		return err
	}
	c.client = client
	return nil
}

// done records an I/O outcome: a failure drops the connection, the next call reconnects.
func (c *Client) done(err error) {
	if err == nil {
		c.state = common.DeviceStatusOK
		return
	}
	c.state = common.DeviceStatusOffline
	if c.client != nil {
		_ = c.client.Close()
		c.client = nil
	}
}

// GetDeviceData reads a property now and returns its value (int64, uint64, float64 or bool).
func (c *Client) GetDeviceData(v Visitor) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return nil, err
	}
	value, err := c.read(v)
	c.done(err)
	return value, err
}

func (c *Client) read(v Visitor) (any, error) {
	switch v.Register {
	case "CoilRegister", "DiscreteInputRegister":
		read := c.client.ReadCoils
		if v.Register == "DiscreteInputRegister" {
			read = c.client.ReadDiscreteInputs
		}
		bits, err := read(v.Offset, v.Limit)
		if err != nil {
			return nil, err
		}
		if v.DataType == "boolean" || v.DataType == "bool" {
			return bits[0], nil
		}
		var n uint64
		for i, bit := range bits {
			if bit {
				n |= 1 << i
			}
		}
		return int64(n), nil
	}
	kind, words, err := wordType(v)
	if err != nil {
		return nil, err
	}
	regType := modbus.HOLDING_REGISTER
	if v.Register == "InputRegister" {
		regType = modbus.INPUT_REGISTER
	}
	regs, err := c.client.ReadRegisters(v.Offset, words, regType)
	if err != nil {
		return nil, err
	}
	raw := swapped(regs, v)
	var value float64
	switch kind {
	case "int16":
		value = float64(int16(raw))
	case "uint16", "uint32", "uint64":
		if v.Scale == 0 || v.Scale == 1 {
			return int64(raw), nil
		}
		value = float64(raw)
	case "int32":
		value = float64(int32(raw))
	case "int64":
		value = float64(int64(raw))
	case "float32":
		value = float64(math.Float32frombits(uint32(raw)))
	case "float64":
		value = math.Float64frombits(raw)
	}
	if v.Scale != 0 && v.Scale != 1 {
		value *= v.Scale
	}
	if kind == "int16" || kind == "int32" || kind == "int64" {
		if v.Scale == 0 || v.Scale == 1 {
			return int64(value), nil
		}
	}
	return value, nil
}

// wordType resolves a visitor's data type to a register layout and its number of registers:
// sized names as they are, the generic int/float/double by limit (int: unsigned; float and
// double over one register: a scaled int16, as KubeEdge's Modbus sample reads temperature).
func wordType(v Visitor) (string, uint16, error) {
	switch v.DataType {
	case "int16", "uint16":
		return v.DataType, 1, nil
	case "int32", "uint32", "float32":
		return v.DataType, 2, nil
	case "int64", "uint64", "float64":
		return v.DataType, 4, nil
	case "", "int", "integer":
		switch v.Limit {
		case 1:
			return "uint16", 1, nil
		case 2:
			return "uint32", 2, nil
		case 4:
			return "uint64", 4, nil
		}
	case "float":
		switch v.Limit {
		case 1:
			return "int16", 1, nil
		case 2:
			return "float32", 2, nil
		}
	case "double":
		switch v.Limit {
		case 1:
			return "int16", 1, nil
		case 2:
			return "int32", 2, nil
		case 4:
			return "float64", 4, nil
		}
	}
	return "", 0, fmt.Errorf("visitors.configData.dataType: %q with limit %d is not a register layout", v.DataType, v.Limit)
}

// swapped applies isRegisterSwap (word order) and isSwap (bytes in each word) and joins the
// registers big-endian.
func swapped(regs []uint16, v Visitor) uint64 {
	words := append([]uint16(nil), regs...)
	if v.IsRegisterSwap {
		for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	}
	var raw uint64
	for _, w := range words {
		if v.IsSwap {
			w = w<<8 | w>>8
		}
		raw = raw<<16 | uint64(w)
	}
	return raw
}

// SetDeviceData writes a value (what common.Convert made of a desired value) to the property's
// registers. The template calls it with "" for a property without a desired value: nothing to do.
func (c *Client) SetDeviceData(data any, v Visitor) error {
	if s, ok := data.(string); ok && s == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return err
	}
	err := c.write(data, v)
	c.done(err)
	return err
}

func (c *Client) write(data any, v Visitor) error {
	f, b, err := numeric(data)
	if err != nil {
		return err
	}
	switch v.Register {
	case "CoilRegister":
		return c.client.WriteCoil(v.Offset, b)
	case "HoldingRegister":
	default:
		return fmt.Errorf("register %s is read-only", v.Register)
	}
	kind, words, err := wordType(v)
	if err != nil {
		return err
	}
	if v.Scale != 0 && v.Scale != 1 {
		f /= v.Scale
	}
	var raw uint64
	switch kind {
	case "float32":
		raw = uint64(math.Float32bits(float32(f)))
	case "float64":
		raw = math.Float64bits(f)
	default:
		raw = uint64(int64(math.Round(f)))
	}
	buf := make([]byte, 8)
	binary.BigEndian.PutUint64(buf, raw)
	regs := make([]uint16, words)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(buf[8-2*int(words)+2*i:])
	}
	raw = swapped(regs, v) // the swaps are involutions: the same ones make the write
	for i := range regs {
		regs[int(words)-1-i] = uint16(raw >> (16 * i))
	}
	return c.client.WriteRegisters(v.Offset, regs)
}

func numeric(data any) (float64, bool, error) {
	switch v := data.(type) {
	case int64:
		return float64(v), v != 0, nil
	case float64:
		return v, v != 0, nil
	case float32:
		return float64(v), v != 0, nil
	case bool:
		if v {
			return 1, true, nil
		}
		return 0, false, nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b, berr := strconv.ParseBool(v)
			if berr != nil {
				return 0, false, fmt.Errorf("%q is not a number or a boolean", v)
			}
			return numeric(b)
		}
		return f, f != 0, nil
	}
	return 0, false, fmt.Errorf("%v (%T) cannot be written to a Modbus register", data, data)
}

// StopDevice closes the connection.
func (c *Client) StopDevice() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		return nil
	}
	err := c.client.Close()
	c.client = nil
	return err
}

// GetDeviceStates is the device's state from its last transaction: ok, offline, or unknown
// before the first (the template's driver always answers ok).
func (c *Client) GetDeviceStates() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, nil
}
