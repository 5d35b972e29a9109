// Command edgecore-dmi runs EdgeCore's own device-twin module (github.com/kubeedge/kubeedge
// edge/pkg/devicetwin, with its DMI worker, DMI cache and DMI gRPC server, rate limiter
// included) inside KubeEdge's beehive, on a SQLite file and a DMI socket folder of our choosing.
//
// What EdgeCore's other modules would do around it is played here, in the form those modules
// use (beehive messages, meta rows):
//   - the cloud's device controller: a membership update that adds each device of --fleet to
//     the node (as edgehub delivers it), and a cloud_connected event;
//   - MetaManager: each DeviceModel and Device of --fleet stored in its meta table before the
//     modules start, as it stores what the cloud sends (EdgeCore's DMI worker loads them from
//     there at start, so they are in the DMI cache before the DMI socket exists);
//   - EventBus (MQTT) and EdgeHub (the cloud link): two modules that print every message the
//     twin module sends them as one JSON line on stdout, in place of publishing it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2"
	"github.com/kubeedge/api/apis/devices/v1beta1"
	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
	"github.com/kubeedge/beehive/pkg/core/model"
	"github.com/kubeedge/kubeedge/cloud/pkg/devicecontroller/constants"
	"github.com/kubeedge/kubeedge/edge/pkg/common/modules"
	"github.com/kubeedge/kubeedge/edge/pkg/devicetwin"
	"github.com/kubeedge/kubeedge/edge/pkg/devicetwin/dttype"
	"github.com/kubeedge/kubeedge/edge/pkg/metamanager/dao"
	"github.com/kubeedge/kubeedge/edge/pkg/metamanager/dao/dbclient"
	"github.com/kubeedge/kubeedge/edge/pkg/metamanager/dao/models"
)

// fleet is the --fleet file: the CRD objects the cloud would have sent to this node.
type fleet struct {
	DeviceModels []v1beta1.DeviceModel `json:"deviceModels"`
	Devices      []v1beta1.Device      `json:"devices"`
}

func main() {
	klog.InitFlags(nil)
	dmiDir := flag.String("dmi-dir", "", "folder of EdgeCore's DMI socket (it listens on <dir>/dmi.sock)")
	dbPath := flag.String("db", "", "SQLite file of EdgeCore's metamanager and device-twin tables")
	nodeName := flag.String("node-name", "edge-node", "the node's name")
	fleetPath := flag.String("fleet", "", "JSON file {\"deviceModels\": [...], \"devices\": [...]} of v1beta1 CRD objects")
	flag.Parse()
	if *dmiDir == "" || *dbPath == "" {
		fmt.Fprintln(os.Stderr, "usage: edgecore-dmi --dmi-dir DIR --db FILE [--node-name NAME] [--fleet FILE]")
		os.Exit(2)
	}
	var seed fleet
	if *fleetPath != "" {
		raw, err := os.ReadFile(*fleetPath)
		if err == nil {
			err = json.Unmarshal(raw, &seed)
		}
		if err != nil {
			klog.Exitf("--fleet %s: %v", *fleetPath, err)
		}
	}

	socketDir, err := filepath.Abs(*dmiDir)
	if err != nil {
		klog.Exitf("--dmi-dir: %v", err)
	}
	twinConfig := &v1alpha2.DeviceTwin{Enable: true, DMISockPath: socketDir}
	dao.Init(*dbPath, twinConfig, &v1alpha2.MetaManager{Enable: true})
	storeFleet(seed)
	devicetwin.Register(twinConfig, *nodeName)
	out := newPrinter()
	core.Register(&printModule{name: modules.EventBusModuleName, group: modules.BusGroup, out: out})
	core.Register(&printModule{name: modules.EdgeHubModuleName, group: modules.HubGroup, out: out})
	core.StartModules()

	sendFleet(seed, *nodeName)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	beehiveContext.Cancel()
}

// storeFleet stores the fleet's objects in the meta table as MetaManager stores them.
func storeFleet(seed fleet) {
	metas := dbclient.NewMetaService()
	store := func(namespace, kind, name string, object any) {
		content, err := json.Marshal(object)
		if err == nil {
			err = metas.SaveMeta(&models.Meta{Key: namespace + "/" + kind + "/" + name, Type: kind, Value: string(content)})
		}
		if err != nil {
			klog.Exitf("%s %s/%s: %v", kind, namespace, name, err)
		}
	}
	for i := range seed.DeviceModels {
		m := &seed.DeviceModels[i]
		store(m.Namespace, constants.ResourceTypeDeviceModel, m.Name, m)
	}
	for i := range seed.Devices {
		d := &seed.Devices[i]
		store(d.Namespace, constants.ResourceTypeDevice, d.Name, d)
	}
}

// sendFleet tells the twin module that the cloud is connected and that the fleet's devices are
// members of this node, in the messages EdgeHub and the cloud's device controller send.
func sendFleet(seed fleet, nodeName string) {
	connected := model.NewMessage("").BuildRouter("edgehub", modules.TwinGroup,
		"node/connection", "connect").FillBody("cloud_connected")
	beehiveContext.SendToGroup(modules.TwinGroup, *connected)

	var members dttype.MembershipUpdate
	for i := range seed.Devices {
		d := &seed.Devices[i]
		members.AddDevices = append(members.AddDevices, dttype.Device{ID: d.Namespace + "/" + d.Name, Name: d.Name})
	}
	if len(members.AddDevices) == 0 {
		return
	}
	content, err := json.Marshal(members)
	if err != nil {
		klog.Exitf("membership update: %v", err)
	}
	msg := model.NewMessage("").BuildRouter("devicecontroller", modules.TwinGroup,
		"node/"+nodeName+"/membership", model.UpdateOperation).FillBody(content)
	beehiveContext.SendToGroup(modules.TwinGroup, *msg)
}
