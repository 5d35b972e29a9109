package main

import (
	"encoding/json"
	"os"
	"sync"

	"k8s.io/klog/v2"

	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
)

// printer writes one JSON object a line to stdout, whole lines only.
type printer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newPrinter() *printer {
	return &printer{enc: json.NewEncoder(os.Stdout)}
}

// line is what a stand-in module prints for each message it receives.
type line struct {
	Module    string `json:"module"`
	Source    string `json:"source"`
	Group     string `json:"group"`
	Resource  string `json:"resource"`
	Operation string `json:"operation"`
	Content   string `json:"content"`
}

func (p *printer) print(l line) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enc.Encode(l); err != nil {
		klog.Errorf("stdout: %v", err)
	}
}

// printModule stands in for an EdgeCore module that the twin module sends to (EventBus,
// EdgeHub): it receives from beehive like that module and prints each message.
type printModule struct {
	name  string
	group string
	out   *printer
}

var _ core.Module = (*printModule)(nil)

func (m *printModule) Name() string                             { return m.name }
func (m *printModule) Group() string                            { return m.group }
func (m *printModule) Enable() bool                             { return true }
func (m *printModule) RestartPolicy() *core.ModuleRestartPolicy { return nil }

func (m *printModule) Start() {
	for {
		select {
		case <-beehiveContext.Done():
			return
		default:
		}
		msg, err := beehiveContext.Receive(m.name)
		if err != nil {
			klog.Errorf("%s: %v", m.name, err)
			return
		}
		var content string
		switch c := msg.GetContent().(type) {
		case string:
			content = c
		case []byte:
			content = string(c)
		default:
			raw, err := json.Marshal(c)
			if err != nil {
				klog.Errorf("%s: content of %s: %v", m.name, msg.GetResource(), err)
			}
			content = string(raw)
		}
		m.out.print(line{
			Module: m.name, Source: msg.GetSource(), Group: msg.GetGroup(),
			Resource: msg.GetResource(), Operation: msg.GetOperation(), Content: content,
		})
	}
}
