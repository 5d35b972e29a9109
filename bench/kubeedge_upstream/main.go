// Command kubeedge-upstream is the baseline of bench/cloud_sync.py: KubeEdge's upstream shape
// for device twins, on the same load and the same API server as twinplane's cloud.
//
// KubeEdge's CloudCore turns every twin-report message of an edge node into one JSON merge
// patch of the device's DeviceStatus, handled by one worker (cloud/pkg/devicecontroller's
// upstream controller reads one channel, buffered at 1024 messages by default, and patches
// for each message before it takes the next). This program does the same with client-go,
// the library CloudCore uses: every interval it produces one report per device (every
// property's value changed, stamped with the time it was produced, as an edge read stamps
// it), queues them on a channel of --buffer messages, and one goroutine sends one
// merge patch per message. When the worker cannot keep up, the producer blocks on the full
// channel and later reports carry older stamps: the lag bench/cloud_sync.py measures from a
// watch. Nothing of KubeEdge's code is copied; the shape is read from it.
//
// --qps sets client-go's client-side limit (CloudCore's kubeAPIConfig sets one); the default,
// -1, removes it, which is the most the one worker can send.
//
// At the end it prints one JSON line: the patches sent, their rate, the errors, the offered
// rate, and how many reports were still waiting.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// report is one twin-report message: twins [first, first+count) of one device.
type report struct {
	device int
	first  int
	count  int
	stamp  int64
	seq    int64
}

type twinValue struct {
	Value    string            `json:"value"`
	Metadata map[string]string `json:"metadata"`
}

type twin struct {
	PropertyName string     `json:"propertyName"`
	Reported     *twinValue `json:"reported,omitempty"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	namespace := flag.String("namespace", "default", "namespace of the DeviceStatus objects")
	nodes := flag.Int("nodes", 1, "edge nodes")
	devices := flag.Int("devices", 100, "devices per node")
	properties := flag.Int("properties", 10, "properties per device")
	perMessage := flag.Int("twins-per-message", 1, "twins one report message carries "+
		"(mapper-framework reports each twin with its own call: 1)")
	interval := flag.Duration("interval", time.Second, "how often every value changes")
	duration := flag.Duration("duration", 30*time.Second, "how long to run")
	buffer := flag.Int("buffer", 1024, "the upstream channel's buffer (CloudCore's default)")
	qps := flag.Float64("qps", -1, "client-side requests per second (-1: no limit)")
	burst := flag.Int("burst", 200, "client-side burst, with --qps")
	flag.Parse()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(err)
	}
	config.QPS = float32(*qps)
	config.Burst = *burst
	config.UserAgent = "kubeedge-upstream-baseline"
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		fail(err)
	}
	gvr := schema.GroupVersionResource{
		Group: "devices.kubeedge.io", Version: "v1beta1", Resource: "devicestatuses",
	}
	statuses := client.Resource(gvr).Namespace(*namespace)

	names := make([]string, 0, *nodes**devices)
	for n := 0; n < *nodes; n++ {
		for d := 0; d < *devices; d++ {
			names = append(names, fmt.Sprintf("n%02d-d%04d", n, d))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	queue := make(chan report, *buffer)
	go produce(ctx, queue, len(names), *properties, *perMessage, *interval)
	// CloudCore keeps each device's twins and patches the whole list for every message (a
	// merge patch replaces a list whole); so does this cache.
	cache := make([][]twin, len(names))
	for i := range cache {
		cache[i] = make([]twin, *properties)
		for p := range cache[i] {
			cache[i][p].PropertyName = fmt.Sprintf("p%d", p)
		}
	}

	messagesPerDevice := (*properties + *perMessage - 1) / *perMessage
	sent, errors := 0, 0
	started := time.Now()
	for {
		select {
		case <-ctx.Done():
			elapsed := time.Since(started).Seconds()
			out := map[string]any{
				"patches":          sent,
				"patches_per_s":    float64(sent) / elapsed,
				"errors":           errors,
				"offered_per_s":    float64(len(names)*messagesPerDevice) / interval.Seconds(),
				"waiting_at_end":   len(queue),
				"elapsed_s":        elapsed,
				"client_qps_limit": *qps,
				"upstream_channel": *buffer,
				"workers":          1,
			}
			line, _ := json.Marshal(out)
			fmt.Println(string(line))
			return
		case r := <-queue:
			body := patchOf(cache[r.device], r, *properties)
			name := names[r.device]
			_, err := statuses.Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{})
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				errors++
				if errors <= 5 {
					fmt.Fprintf(os.Stderr, "patch %s: %v\n", name, err)
				}
				continue
			}
			sent++
		}
	}
}

// produce queues every device's reports every interval (its twins in messages of perMessage),
// stamped when produced; it blocks on a full queue, as the hub's reader does when the upstream
// channel is full.
func produce(ctx context.Context, queue chan<- report, devices, properties, perMessage int,
	interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var seq int64
	for {
		seq++
		for d := 0; d < devices; d++ {
			for first := 0; first < properties; first += perMessage {
				count := min(perMessage, properties-first)
				r := report{device: d, first: first, count: count, stamp: time.Now().UnixMilli(), seq: seq}
				select {
				case queue <- r:
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}

// patchOf updates the cached twins of the message's device and returns the merge patch of the
// whole list.
func patchOf(twins []twin, r report, properties int) []byte {
	stamp := strconv.FormatInt(r.stamp, 10)
	for p := r.first; p < r.first+r.count; p++ {
		twins[p].Reported = &twinValue{
			Value:    strconv.FormatInt(r.seq*int64(properties)+int64(p), 10),
			Metadata: map[string]string{"timestamp": stamp, "type": "INT"},
		}
	}
	body, _ := json.Marshal(map[string]any{"status": map[string]any{"twins": twins}})
	return body
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kubeedge-upstream:", err)
	os.Exit(1)
}
