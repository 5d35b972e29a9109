// Command dmi-client is KubeEdge's side of DMI v1beta1, built from KubeEdge's own generated
// stubs (github.com/kubeedge/api/apis/dmi/v1beta1) and grpc-go, pointed at twinplane.
//
// Scenario "edge" plays a mapper built on mapper-framework: it calls every DeviceManagerService
// RPC of `twinplane edge` (MapperRegister, ReportDeviceStatus, ReportDeviceStates) with the
// messages mapper-framework sends, and with the nil and empty fields a peer may send.
//
// Scenario "mapper" plays EdgeCore: it calls every DeviceMapperService RPC of a twinplane
// mapper (RegisterDevice, RemoveDevice, UpdateDevice, CreateDeviceModel, UpdateDeviceModel,
// RemoveDeviceModel, GetDevice) with Devices and DeviceModels shaped as EdgeCore converts them
// from the CRDs, configData packed in google.protobuf.Any.
//
// Each RPC's outcome is one JSON line on stdout (see result); the program judges nothing, the
// test that runs it does. The exit status is 0 when every call was made (whatever it answered),
// 2 for bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// callTimeout is the deadline of one RPC. EdgeCore gives its calls to a mapper 10 s,
// mapper-framework its calls to EdgeCore 1 s; the longer one keeps a loaded test machine
// from turning into failures (the deadline is not what these scenarios check).
const callTimeout = 10 * time.Second

// result is one RPC's outcome, printed as one JSON line.
type result struct {
	// Case names the call in its scenario (unique per scenario).
	Case string `json:"case"`
	// Method is the RPC's name.
	Method string `json:"method"`
	// Request is the message sent, as protojson (nil sub-messages are absent, empty ones {}).
	Request json.RawMessage `json:"request"`
	// OK is true when the RPC answered without an error.
	OK bool `json:"ok"`
	// Code is the gRPC status code's name (OK, InvalidArgument, NotFound, ...).
	Code string `json:"code"`
	// Message is the status message (empty when OK).
	Message string `json:"message"`
	// Answer holds the fields of the response a test checks.
	Answer any `json:"answer,omitempty"`
	// Attempts counts the calls made when a case asks again until a condition holds.
	Attempts int `json:"attempts,omitempty"`
	// Millis is how long the (last) call took.
	Millis int64 `json:"ms"`
}

// printer writes results, one JSON object per line.
type printer struct {
	out *json.Encoder
}

func (p *printer) print(r result) {
	if err := p.out.Encode(r); err != nil {
		fmt.Fprintf(os.Stderr, "dmi-client: cannot write a result: %v\n", err)
		os.Exit(1)
	}
}

// dial connects to a Unix socket the way EdgeCore and mapper-framework do: the bare socket path
// as a passthrough target, a unix dialer, no transport security. Like them, the scenarios
// open one connection per call and close it afterwards.
func dial(socket string) (*grpc.ClientConn, error) {
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}
	return grpc.NewClient("passthrough:///"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
	)
}

// rpc is a generated client method taken as a method expression, such as
// dmi.DeviceManagerServiceClient.MapperRegister.
type rpc[C any, Req, Resp proto.Message] func(C, context.Context, Req, ...grpc.CallOption) (Resp, error)

// call makes one RPC on a fresh connection to socket and returns the response (nil on error)
// with the result to print; answer turns a response into the result's Answer.
func call[C any, Req, Resp proto.Message](
	socket string,
	client func(grpc.ClientConnInterface) C,
	name, method string,
	req Req,
	do rpc[C, Req, Resp],
	answer func(Resp) any,
) (Resp, result) {
	var none Resp
	r := result{Case: name, Method: method, Request: requestJSON(req)}
	conn, err := dial(socket)
	if err != nil {
		r.Code, r.Message = "DialFailed", err.Error()
		return none, r
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	start := time.Now()
	resp, err := do(client(conn), ctx, req)
	r.Millis = time.Since(start).Milliseconds()
	st := status.Convert(err)
	r.Code, r.Message, r.OK = st.Code().String(), st.Message(), err == nil
	if err != nil {
		return none, r
	}
	if answer != nil {
		r.Answer = answer(resp)
	}
	return resp, r
}

// requestJSON is a request as protojson, with the proto field names the .proto file uses.
func requestJSON(m proto.Message) json.RawMessage {
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"marshalError": err.Error()})
	}
	return data
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("dmi-client", flag.ContinueOnError)
	flags.SetOutput(stderr)
	scenario := flags.String("scenario", "", `"edge" (DeviceManagerService) or "mapper" (DeviceMapperService)`)
	edgeSocket := flags.String("edge-socket", "", "the device manager's DMI socket (scenario edge)")
	mapperAddress := flags.String("mapper-address", "", "the socket path this client registers as its own (scenario edge)")
	mapperSocket := flags.String("mapper-socket", "", "the mapper's socket (scenario mapper)")
	modbusAddr := flags.String("modbus-addr", "", "HOST:PORT of the Modbus TCP server the devices are on (scenario mapper)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	p := &printer{out: json.NewEncoder(stdout)}
	switch *scenario {
	case "edge":
		if *edgeSocket == "" || *mapperAddress == "" {
			fmt.Fprintln(stderr, "dmi-client: scenario edge needs --edge-socket and --mapper-address")
			return 2
		}
		edgeScenario(p, *edgeSocket, *mapperAddress)
	case "mapper":
		host, port, err := splitHostPort(*modbusAddr)
		if *mapperSocket == "" || err != nil {
			fmt.Fprintln(stderr, "dmi-client: scenario mapper needs --mapper-socket and --modbus-addr HOST:PORT")
			return 2
		}
		mapperScenario(p, *mapperSocket, host, port)
	default:
		fmt.Fprintf(stderr, "dmi-client: --scenario must be edge or mapper, not %q\n", *scenario)
		return 2
	}
	return 0
}

// splitHostPort is HOST:PORT with a TCP port number.
func splitHostPort(addr string) (string, int, error) {
	host, text, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(text)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a TCP port", text)
	}
	return host, port, nil
}
