module github.com/twinplane/twinplane/interop/go

go 1.24

require (
	github.com/kubeedge/api v1.23.0
	github.com/kubeedge/mapper-framework v1.23.0
	github.com/simonvetter/modbus v1.6.4
	github.com/spf13/pflag v1.0.6-0.20210604193023-d5e0c0615ace
	google.golang.org/grpc v1.67.1
	google.golang.org/protobuf v1.35.2
	k8s.io/klog/v2 v2.130.1
)

require (
	github.com/avast/retry-go v3.0.0+incompatible // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/goburrow/serial v0.1.0 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/gorilla/mux v1.8.0 // indirect
	github.com/kr/text v0.2.0 // indirect
	golang.org/x/net v0.37.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20241007155032-5fefd90f89a9 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)

// mapper-framework requires github.com/kubeedge/api v0.0.0 and replaces it with ../api, its
// monorepo sibling; a module outside that repository takes the published api release instead.
replace github.com/kubeedge/api v0.0.0 => github.com/kubeedge/api v1.23.0
