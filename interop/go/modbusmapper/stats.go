package modbusmapper

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
)

// Stats are the mapper's counters, served as Prometheus text with the names twinplane's mappers
// use (twinplane_mapper_*), so the load test reads every mapper the same way. They are this
// program's additions: mapper-framework has no metrics.
type Stats struct {
	registrations     atomic.Int64
	onTime            atomic.Int64
	late              atomic.Int64
	reports           atomic.Int64
	reportErrors      atomic.Int64
	stateReports      atomic.Int64
	stateReportErrors atomic.Int64

	mu         sync.Mutex
	polls      map[string]int64
	pollErrors map[string]int64
	reportTime histogram
}

// ReportBounds are the buckets (seconds) of the time a ReportDeviceStatus takes, dial included.
var ReportBounds = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}

type histogram struct {
	counts []int64 // one per bound, then +Inf
	sum    float64
	count  int64
}

func (h *histogram) observe(seconds float64) {
	if h.counts == nil {
		h.counts = make([]int64, len(ReportBounds)+1)
	}
	i := sort.SearchFloat64s(ReportBounds, seconds)
	h.counts[i]++
	h.sum += seconds
	h.count++
}

// NewStats makes zeroed counters.
func NewStats() *Stats {
	return &Stats{polls: map[string]int64{}, pollErrors: map[string]int64{}}
}

// Registered counts a MapperRegister that succeeded.
func (s *Stats) Registered() { s.registrations.Add(1) }

// Poll counts a property read that succeeded on bus, on time or not.
func (s *Stats) Poll(bus string, onTime bool) {
	s.mu.Lock()
	s.polls[bus]++
	s.mu.Unlock()
	if onTime {
		s.onTime.Add(1)
	} else {
		s.late.Add(1)
	}
}

// PollError counts a property read that failed on bus.
func (s *Stats) PollError(bus string) {
	s.mu.Lock()
	s.pollErrors[bus]++
	s.mu.Unlock()
}

// Late counts polls the ticker dropped because their loop was busy.
func (s *Stats) Late(n int64) { s.late.Add(n) }

// Report counts a ReportDeviceStatus that succeeded.
func (s *Stats) Report() { s.reports.Add(1) }

// ReportTime records how long a ReportDeviceStatus took, its dial included, failed or not.
func (s *Stats) ReportTime(seconds float64) {
	s.mu.Lock()
	s.reportTime.observe(seconds)
	s.mu.Unlock()
}

// ReportError counts a ReportDeviceStatus that failed.
func (s *Stats) ReportError() { s.reportErrors.Add(1) }

// StateReport counts a ReportDeviceStates that succeeded.
func (s *Stats) StateReport() { s.stateReports.Add(1) }

// StateReportError counts a ReportDeviceStates that failed.
func (s *Stats) StateReportError() { s.stateReportErrors.Add(1) }

// ServeHTTP writes the counters (GET /metrics).
func (s *Stats) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	single := func(name, kind, help string, value int64) {
		fmt.Fprintf(w, "# HELP twinplane_mapper_%s %s\n# TYPE twinplane_mapper_%s %s\ntwinplane_mapper_%s %d\n", name, help, name, kind, name, value)
	}
	fmt.Fprintf(w, "# HELP twinplane_mapper_build_info The mapper's build; style: mapper-framework's Go code.\n")
	fmt.Fprintf(w, "# TYPE twinplane_mapper_build_info gauge\ntwinplane_mapper_build_info{protocol=\"modbus\",style=\"mapper-framework\"} 1\n")
	single("registrations_total", "counter", "Successful MapperRegister calls.", s.registrations.Load())
	s.mu.Lock()
	buses := map[string]bool{}
	for b := range s.polls {
		buses[b] = true
	}
	for b := range s.pollErrors {
		buses[b] = true
	}
	names := make([]string, 0, len(buses))
	for b := range buses {
		names = append(names, b)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "# HELP twinplane_mapper_bus_polls_total Property polls that succeeded, by endpoint.\n# TYPE twinplane_mapper_bus_polls_total counter\n")
	for _, b := range names {
		fmt.Fprintf(w, "twinplane_mapper_bus_polls_total{bus=%q} %d\n", b, s.polls[b])
	}
	fmt.Fprintf(w, "# HELP twinplane_mapper_bus_poll_errors_total Property polls that failed, by endpoint.\n# TYPE twinplane_mapper_bus_poll_errors_total counter\n")
	for _, b := range names {
		fmt.Fprintf(w, "twinplane_mapper_bus_poll_errors_total{bus=%q} %d\n", b, s.pollErrors[b])
	}
	name := "twinplane_mapper_report_seconds"
	fmt.Fprintf(w, "# HELP %s Time a ReportDeviceStatus took, the dial of its connection included.\n# TYPE %s histogram\n", name, name)
	var cumulative int64
	h := s.reportTime
	for i, bound := range ReportBounds {
		if h.counts != nil {
			cumulative += h.counts[i]
		}
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, bound, cumulative)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.count, name, h.sum, name, h.count)
	s.mu.Unlock()
	single("polls_on_time_total", "counter", "Polls that started within 10% of their cycle after their due time and read in time.", s.onTime.Load())
	single("polls_late_total", "counter", "Polls that started or finished late, or were dropped because their loop was busy.", s.late.Load())
	fmt.Fprintf(w, "# HELP twinplane_mapper_reports_sent_total ReportDeviceStatus calls that succeeded (one twin each).\n# TYPE twinplane_mapper_reports_sent_total counter\ntwinplane_mapper_reports_sent_total{path=\"unary\"} %d\n", s.reports.Load())
	single("report_errors_total", "counter", "ReportDeviceStatus calls that failed.", s.reportErrors.Load())
	single("twin_changes_total", "counter", "Twins reported (one per poll).", s.reports.Load())
	single("state_reports_sent_total", "counter", "ReportDeviceStates calls sent.", s.stateReports.Load())
	single("state_report_errors_total", "counter", "ReportDeviceStates calls that failed.", s.stateReportErrors.Load())
}
