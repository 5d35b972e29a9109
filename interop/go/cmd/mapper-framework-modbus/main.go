// Command mapper-framework-modbus is a KubeEdge mapper built the way mapper-framework's users
// build one: its main is the template's (_template/mapper/cmd/main.go) — parse the config,
// register with the device manager (grpcclient.RegisterMapper with data), start the devices,
// serve the REST API (httpserver) and DeviceMapperService (grpcserver) — with the device panel,
// loops and Modbus driver of package modbusmapper.
//
// Flags: mapper-framework's own (--config-file, --v), plus --metrics-addr HOST:PORT for the
// counters the load test reads (off when empty).
package main

import (
	"errors"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubeedge/mapper-framework/pkg/common"
	"github.com/kubeedge/mapper-framework/pkg/config"
	"github.com/kubeedge/mapper-framework/pkg/grpcclient"
	"github.com/kubeedge/mapper-framework/pkg/grpcserver"
	"github.com/kubeedge/mapper-framework/pkg/httpserver"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/twinplane/twinplane/interop/go/modbusmapper"
)

func main() {
	klog.InitFlags(nil)
	defer klog.Flush()
	metricsAddr := pflag.String("metrics-addr", "", "serve the counters at http://HOST:PORT/metrics (off when empty)")

	c, err := config.Parse()
	if err != nil {
		klog.Fatal(err)
	}
	stats := modbusmapper.NewStats()
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", stats)
		go func() { klog.Fatal(http.ListenAndServe(*metricsAddr, mux)) }()
	}

	klog.Infoln("Mapper will register to edgecore")
	devices, models, err := grpcclient.RegisterMapper(true)
	if err != nil {
		klog.Fatal(err)
	}
	stats.Registered()
	klog.Infof("Mapper register finished: %d devices, %d models", len(devices), len(models))

	panel := modbusmapper.NewPanel(stats)
	if err := panel.DevInit(devices, models); err != nil && !errors.Is(err, modbusmapper.ErrEmptyData) {
		klog.Fatal(err)
	}
	panel.DevStart()

	rest := httpserver.NewRestServer(panel, c.Common.HTTPPort)
	go rest.StartServer()

	server := grpcserver.NewServer(grpcserver.Config{SockPath: c.GrpcServer.SocketPath, Protocol: common.ProtocolCustomized}, panel)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals // the template exits on SIGINT after stopping its devices; SIGTERM too here
		panel.Stop()
		server.Stop()
		klog.Flush()
		os.Exit(0)
	}()
	if err := server.Start(); err != nil {
		klog.Fatal(err)
	}
}
