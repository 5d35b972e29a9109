package modbusmapper

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	dmiapi "github.com/kubeedge/api/apis/dmi/v1beta1"
	"github.com/kubeedge/mapper-framework/pkg/common"
	"github.com/kubeedge/mapper-framework/pkg/grpcclient"
	"github.com/kubeedge/mapper-framework/pkg/util/parse"
	"k8s.io/klog/v2"
)

// OnTimeTolerance is the share of a cycle a poll may start after its due time and still be on
// time (twinplane's mappers count polls the same way).
const OnTimeTolerance = 0.1

// start runs a device as the template's DevPanel.start and dataHandler do
// (_template/mapper/device/device.go): InitDevice, then a state loop (devicestatus.go) and, for
// every property, the desired value written unless it is ReadOnly (setVisitor), then a twin
// loop (devicetwin.go, TwinData.Run). Push and database loops (pushMethod, dbMethod) are not
// run: this mapper is an interop peer and the load test's baseline, and both leave them out.
func start(ctx context.Context, dev *Device, stats *Stats) {
	client := dev.CustomizedClient
	instance := dev.Instance
	if err := client.InitDevice(); err != nil {
		// The template returns here and the device stays stopped; this driver connects again
		// at the next read, so a device that is not reachable yet comes up when it is.
		klog.Warningf("init device %s: %v", instance.ID, err)
	}
	if instance.Status.ReportToCloud {
		go stateLoop(ctx, client, instance, stats)
	}
	for _, twin := range instance.Twins {
		if twin.Property == nil {
			continue
		}
		twin.Property.PProperty.DataType = strings.ToLower(twin.Property.PProperty.DataType)
		visitor, err := ParseVisitor(twin.Property.Visitors)
		if err != nil {
			klog.Errorf("device %s property %s: %v", instance.ID, twin.PropertyName, err)
			continue
		}
		if err := writeDesired(client, twin, visitor); err != nil {
			klog.Errorf("device %s: %s set device data error: %v", instance.ID, twin.PropertyName, err)
			continue // the template's dataHandler skips the property
		}
		if !twin.Property.ReportToCloud {
			continue
		}
		cycle := time.Duration(twin.Property.CollectCycle) * time.Millisecond
		if cycle <= 0 {
			cycle = common.DefaultCollectCycle
		}
		go twinLoop(ctx, client, instance, twin, visitor, cycle, stats)
	}
	<-ctx.Done()
}

// writeDesired is the template's setVisitor: a ReadWrite property's desired value, converted by
// the model's type, is written when the device starts ("" when there is none, which the driver
// ignores).
func writeDesired(client *Client, twin common.Twin, visitor Visitor) error {
	if twin.Property.PProperty.AccessMode == "ReadOnly" {
		return nil
	}
	var value any = twin.ObservedDesired.Value
	if twin.ObservedDesired.Value != "" {
		converted, err := common.Convert(twin.Property.PProperty.DataType, twin.ObservedDesired.Value)
		if err != nil {
			return err
		}
		value = converted
	}
	return client.SetDeviceData(value, visitor)
}

// twinLoop is TwinData.Run: a time.Ticker at the property's collectCycle; each tick reads the
// property and reports it alone (PushToEdgeCore). A tick that comes while the loop is busy is
// dropped by the ticker; the dropped ones are counted late.
func twinLoop(ctx context.Context, client *Client, instance common.DeviceInstance, twin common.Twin, visitor Visitor, cycle time.Duration, stats *Stats) {
	ticker := time.NewTicker(cycle)
	defer ticker.Stop()
	due := time.Now().Add(cycle)
	bus := client.conn.URL
	for {
		select {
		case <-ctx.Done():
			return
		case tick := <-ticker.C:
			if missed := int(tick.Sub(due) / cycle); missed > 0 {
				stats.Late(int64(missed))
				due = due.Add(time.Duration(missed) * cycle)
			}
			started := time.Now()
			value, err := client.GetDeviceData(visitor)
			done := time.Now()
			if err != nil {
				stats.PollError(bus)
				klog.V(2).Infof("get device data of %s %s failed: %v", instance.ID, twin.PropertyName, err)
			} else {
				onTime := started.Sub(due) <= time.Duration(OnTimeTolerance*float64(cycle)) && done.Sub(due) <= cycle
				stats.Poll(bus, onTime)
				report(instance, twin, value, stats)
			}
			due = due.Add(cycle)
		}
	}
}

// report is PushToEdgeCore: the value as a twin-update message (common.CreateMessageTwinUpdate,
// with the observed desired value), turned into DMI twins (parse.ConvMsgTwinToGrpc) and sent
// with grpcclient.ReportDeviceStatus, which dials the device manager for every report.
func report(instance common.DeviceInstance, twin common.Twin, value any, stats *Stats) {
	text, err := common.ConvertToString(value)
	if err != nil {
		klog.Errorf("convert %s %s: %v", instance.Name, twin.PropertyName, err)
		return
	}
	payload, err := common.CreateMessageTwinUpdate(twin.PropertyName, twin.ObservedDesired.Metadata.Type, text, twin.ObservedDesired.Value)
	if err != nil {
		klog.Errorf("create message twin update failed: %v", err)
		return
	}
	var msg common.DeviceTwinUpdate
	if err := json.Unmarshal(payload, &msg); err != nil {
		klog.Errorf("twindata %s unmarshal failed: %v", twin.PropertyName, err)
		return
	}
	request := &dmiapi.ReportDeviceStatusRequest{
		DeviceName:      instance.Name,
		DeviceNamespace: instance.Namespace,
		ReportedDevice:  &dmiapi.DeviceStatus{Twins: parse.ConvMsgTwinToGrpc(msg.Twin)},
	}
	sent := time.Now()
	err = grpcclient.ReportDeviceStatus(request)
	stats.ReportTime(time.Since(sent).Seconds())
	if err != nil {
		stats.ReportError()
		klog.Errorf("fail to report device status of %s with err: %+v", instance.Name, err)
		return
	}
	stats.Report()
}

// stateLoop is DeviceStates.Run: when the device's status.reportToCloud is set, its state is
// sent every status.reportCycle (default 1 s) with grpcclient.ReportDeviceStates.
func stateLoop(ctx context.Context, client *Client, instance common.DeviceInstance, stats *Stats) {
	cycle := time.Duration(instance.Status.ReportCycle) * time.Millisecond
	if cycle <= 0 {
		cycle = common.DefaultReportCycle
	}
	ticker := time.NewTicker(cycle)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			state, err := client.GetDeviceStates()
			if err != nil {
				klog.Errorf("GetDeviceStates failed: %v", err)
				continue
			}
			request := &dmiapi.ReportDeviceStatesRequest{
				DeviceName:      instance.Name,
				DeviceNamespace: instance.Namespace,
				State:           state,
			}
			if err := grpcclient.ReportDeviceStates(request); err != nil {
				stats.StateReportError()
				klog.Errorf("fail to report device states of %s with err: %+v", instance.Name, err)
				continue
			}
			stats.StateReport()
		}
	}
}
