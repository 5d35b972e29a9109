package modbusmapper

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	dmiapi "github.com/kubeedge/api/apis/dmi/v1beta1"
	"github.com/kubeedge/mapper-framework/pkg/common"
	"github.com/kubeedge/mapper-framework/pkg/util/parse"
	"k8s.io/klog/v2"
)

// ErrEmptyData is DevInit's answer to a registration without devices or models (the template's
// main tolerates it, as this mapper's does).
var ErrEmptyData = errors.New("device or device model list is empty")

// Device is one device: its instance as mapper-framework parses it and its driver. The field
// names are the template's (CustomizedDev): mapper-framework's GetDevice reads Instance.Twins by
// reflection.
type Device struct {
	Instance         common.DeviceInstance
	CustomizedClient *Client
}

// Panel is the mapper's device panel (mapper-framework's global.DevPanel), as the template's
// device.DevPanel: devices and models by id (<namespace>/<name>), one cancel per running device.
type Panel struct {
	mu      sync.Mutex
	devices map[string]*Device
	models  map[string]common.DeviceModel
	cancels map[string]context.CancelFunc
	wg      sync.WaitGroup
	stats   *Stats
}

// NewPanel makes an empty panel.
func NewPanel(stats *Stats) *Panel {
	return &Panel{
		devices: map[string]*Device{},
		models:  map[string]common.DeviceModel{},
		cancels: map[string]context.CancelFunc{},
		stats:   stats,
	}
}

// DevInit takes the registration answer's devices and models (template: DevInit).
func (p *Panel) DevInit(devices []*dmiapi.Device, models []*dmiapi.DeviceModel) error {
	if len(devices) == 0 || len(models) == 0 {
		return ErrEmptyData
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range models {
		model := parse.GetDeviceModelFromGrpc(m)
		p.models[model.ID] = model
	}
	for _, d := range devices {
		model := p.models[parse.GetResourceID(d.GetNamespace(), d.GetSpec().GetDeviceModelReference())]
		instance, err := instanceOf(d, &model)
		if err != nil {
			return err
		}
		p.devices[instance.ID] = &Device{Instance: *instance}
	}
	return nil
}

func instanceOf(d *dmiapi.Device, model *common.DeviceModel) (*common.DeviceInstance, error) {
	protocol, err := parse.BuildProtocolFromGrpc(d)
	if err != nil {
		return nil, err
	}
	instance, err := parse.GetDeviceFromGrpc(d, model)
	if err != nil {
		return nil, err
	}
	instance.PProtocol = protocol
	return instance, nil
}

// DevStart starts every device DevInit took, and returns at once (the template's DevStart
// blocks on its wait group and exits the process on SIGINT; here main does both).
func (p *Panel) DevStart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, dev := range p.devices {
		p.startLocked(id, dev)
	}
}

// Stop stops every device and waits for their loops.
func (p *Panel) Stop() {
	p.mu.Lock()
	for id, dev := range p.devices {
		p.stopLocked(id, dev)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Panel) startLocked(id string, dev *Device) {
	conn, err := ParseConnection(dev.Instance.PProtocol.ConfigData)
	if err != nil { // the template's start logs and leaves the device stopped
		klog.Errorf("device %s: %v", id, err)
		return
	}
	dev.CustomizedClient = NewClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancels[id] = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		start(ctx, dev, p.stats)
	}()
}

func (p *Panel) stopLocked(id string, dev *Device) {
	if cancel, ok := p.cancels[id]; ok {
		cancel()
		delete(p.cancels, id)
	}
	if dev != nil && dev.CustomizedClient != nil {
		if err := dev.CustomizedClient.StopDevice(); err != nil {
			klog.Errorf("stop device %s: %v", id, err)
		}
	}
}

// UpdateDev (RegisterDevice, UpdateDevice) stops the device if it runs and starts it afresh
// with the new instance: a desired value change restarts every loop of the device and is
// written at the start, as in the template.
func (p *Panel) UpdateDev(model *common.DeviceModel, instance *common.DeviceInstance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.devices[instance.ID]; ok {
		p.stopLocked(instance.ID, old)
	}
	dev := &Device{Instance: *instance}
	p.devices[instance.ID] = dev
	p.models[model.ID] = *model
	p.startLocked(instance.ID, dev)
}

// UpdateDevTwins replaces a device's twins and restarts it.
func (p *Panel) UpdateDevTwins(deviceID string, twins []common.Twin) error {
	p.mu.Lock()
	dev, ok := p.devices[deviceID]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("device %s not found", deviceID)
	}
	instance := dev.Instance
	instance.Twins = twins
	model := p.models[parse.GetResourceID(instance.Namespace, instance.Model)]
	p.mu.Unlock()
	p.UpdateDev(&model, &instance)
	return nil
}

// DealDeviceTwinGet reads a device's twins now (all, or twinName) for the REST API.
func (p *Panel) DealDeviceTwinGet(deviceID string, twinName string) (any, error) {
	value, _, err := p.GetTwinResult(deviceID, twinName)
	if err != nil {
		return nil, err
	}
	return []parse.TwinResultResponse{{PropertyName: twinName, Payload: []byte(value)}}, nil
}

// GetDevice is a copy of the device with each twin's value read now as its reported value.
//
// It returns a pointer, as the template does, because mapper-framework's REST handler
// MetaGetModel (httpserver/callback.go) calls reflect.Value.IsNil and Elem on the answer and
// panics on a struct. mapper-framework's gRPC GetDevice (grpcserver/device.go) reads the same
// answer with reflect.Value.FieldByName, which panics on a pointer: with v1.23.0 no DevPanel
// can serve both. twinplane's device manager never calls GetDevice; docs/kubeedge.md has this.
func (p *Panel) GetDevice(deviceID string) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dev, ok := p.devices[deviceID]
	if !ok {
		return nil, fmt.Errorf("device %s not found", deviceID)
	}
	found := Device{Instance: dev.Instance, CustomizedClient: dev.CustomizedClient}
	found.Instance.Twins = append([]common.Twin(nil), dev.Instance.Twins...)
	for i, twin := range found.Instance.Twins {
		if dev.CustomizedClient == nil || twin.Property == nil {
			continue
		}
		value, err := readTwin(dev.CustomizedClient, twin)
		if err != nil {
			return nil, err
		}
		found.Instance.Twins[i].Reported.Value = value
	}
	return &found, nil
}

// RemoveDevice stops and forgets a device.
func (p *Panel) RemoveDevice(deviceID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	dev, ok := p.devices[deviceID]
	if !ok {
		return fmt.Errorf("device %s not found", deviceID)
	}
	delete(p.devices, deviceID)
	p.stopLocked(deviceID, dev)
	return nil
}

// WriteDevice is the REST API's devicemethod write: the method must list the property, the
// data is converted by the model's type, then written (template: WriteDevice).
func (p *Panel) WriteDevice(method, deviceID, propertyName, data string) error {
	p.mu.Lock()
	dev, ok := p.devices[deviceID]
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("not found device %s", deviceID)
	}
	listed := false
	known := false
	for _, m := range dev.Instance.Methods {
		if m.Name != method {
			continue
		}
		known = true
		for _, name := range m.PropertyNames {
			listed = listed || name == propertyName
		}
	}
	if !known {
		return fmt.Errorf("deviceMethod name %s does not exist in device instance", method)
	}
	if !listed {
		return fmt.Errorf("deviceProperty %s to be written is not in the list defined by devicemethod", propertyName)
	}
	for _, prop := range dev.Instance.Properties {
		if prop.PropertyName != propertyName {
			continue
		}
		dataType := strings.ToLower(prop.PProperty.DataType)
		value, err := common.Convert(dataType, data)
		if err != nil {
			return fmt.Errorf("conversion data format failed, datatype is %s, data is %s", dataType, data)
		}
		visitor, err := ParseVisitor(prop.Visitors)
		if err != nil {
			return err
		}
		if dev.CustomizedClient == nil {
			return fmt.Errorf("device %s has not started", deviceID)
		}
		return dev.CustomizedClient.SetDeviceData(value, visitor)
	}
	return fmt.Errorf("can't find device propertyName %s in device instance", propertyName)
}

// GetModel is a model by id.
func (p *Panel) GetModel(modelID string) (common.DeviceModel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if model, ok := p.models[modelID]; ok {
		return model, nil
	}
	return common.DeviceModel{}, fmt.Errorf("deviceModel %s not found", modelID)
}

// UpdateModel stores a model.
func (p *Panel) UpdateModel(model *common.DeviceModel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.models[model.ID] = *model
}

// RemoveModel forgets a model.
func (p *Panel) RemoveModel(modelID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.models, modelID)
}

// GetTwinResult reads a twin now (the last one when twinName is empty) and its model type.
func (p *Panel) GetTwinResult(deviceID string, twinName string) (string, string, error) {
	p.mu.Lock()
	dev, ok := p.devices[deviceID]
	p.mu.Unlock()
	if !ok {
		return "", "", fmt.Errorf("not found device %s", deviceID)
	}
	if dev.CustomizedClient == nil {
		return "", "", fmt.Errorf("device %s has not started", deviceID)
	}
	var value, dataType string
	found := false
	for _, twin := range dev.Instance.Twins {
		if twin.Property == nil || (twinName != "" && twin.PropertyName != twinName) {
			continue
		}
		v, err := readTwin(dev.CustomizedClient, twin)
		if err != nil {
			return "", "", fmt.Errorf("get device data failed: %v", err)
		}
		value, dataType, found = v, twin.Property.PProperty.DataType, true
	}
	if !found {
		return "", "", fmt.Errorf("device %s has no property %s", deviceID, twinName)
	}
	return value, dataType, nil
}

// GetDeviceMethod lists a device's methods (their property names) and its property types.
func (p *Panel) GetDeviceMethod(deviceID string) (map[string][]string, map[string]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dev, ok := p.devices[deviceID]
	if !ok {
		return nil, nil, fmt.Errorf("device %s not found", deviceID)
	}
	methods := map[string][]string{}
	for _, m := range dev.Instance.Methods {
		methods[m.Name] = append(methods[m.Name], m.PropertyNames...)
	}
	types := map[string]string{}
	for _, prop := range dev.Instance.Properties {
		types[prop.Name] = strings.ToLower(prop.PProperty.DataType)
	}
	return methods, types, nil
}

func readTwin(client *Client, twin common.Twin) (string, error) {
	visitor, err := ParseVisitor(twin.Property.Visitors)
	if err != nil {
		return "", err
	}
	value, err := client.GetDeviceData(visitor)
	if err != nil {
		return "", err
	}
	return common.ConvertToString(value)
}
