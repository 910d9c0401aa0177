package server

import (
	"context"
	"net/http"
	"time"

	"github.com/groupgate/groupgate/cache"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's Prometheus metrics: gRPC calls, decisions by verdict and rule, tenants' revisions and
// replication lag, plus whatever else is registered on Registry (the resolver cache's counters).
type Metrics struct {
	Registry   *prometheus.Registry
	grpc       *grpcprom.ServerMetrics
	decisions  *prometheus.CounterVec
	violations *prometheus.CounterVec
	warnings   *prometheus.CounterVec
	// findingsEval times each revision's findings evaluation; findingsEvents counts the events it made.
	findingsEval   *prometheus.HistogramVec
	findingsEvents *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them, with Go runtime and process metrics, on a new registry.
// cacheStats, when set, reports the resolver cache's counters.
func NewMetrics(st store.Store, cacheStats func() cache.Stats) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			// Decisions take microseconds; streams of a million members take up to a second.
			grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(10e-6, 4, 11)),
		)),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "groupgate_decisions_total",
			Help: "Decisions made, by question, strict verdict and Entra verdict.",
		}, []string{"question", "verdict", "entra_verdict"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "groupgate_violations_total",
			Help: "Violations reported in decisions, by rule.",
		}, []string{"rule"}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "groupgate_warnings_total",
			Help: "Warnings reported in decisions, by rule (e.g. RULE_PREVIEW_BYPASS).",
		}, []string{"rule"}),
		findingsEval: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "groupgate_findings_evaluation_seconds",
			Help:    "How long evaluating one revision's findings took (WatchFindings), from the store's change log to its events.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 11),
		}, []string{"tenant"}),
		findingsEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "groupgate_findings_events_total",
			Help: "Findings opened or resolved, as WatchFindings reports them.",
		}, []string{"tenant"}),
	}
	m.Registry.MustRegister(m.grpc, m.decisions, m.violations, m.warnings, m.findingsEval, m.findingsEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&tenantCollector{store: st})
	if cacheStats != nil {
		counter := func(name, help string, get func(cache.Stats) uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(cacheStats())) })
		}
		m.Registry.MustRegister(
			counter("groupgate_cache_hits_total", "Resolver answers served from the cache.", func(s cache.Stats) uint64 { return s.Hits }),
			counter("groupgate_cache_misses_total", "Resolver answers computed (not cached, evicted, or stale).", func(s cache.Stats) uint64 { return s.Misses }),
			counter("groupgate_cache_stale_total", "Cached answers refused because a write changed what they depend on.", func(s cache.Stats) uint64 { return s.Stale }),
			counter("groupgate_cache_cost_added_bytes_total", "Bytes of answers added to the cache.", func(s cache.Stats) uint64 { return s.CostAdded }),
			counter("groupgate_cache_cost_evicted_bytes_total", "Bytes of answers evicted from the cache.", func(s cache.Stats) uint64 { return s.CostEvicted }),
		)
	}
	return m
}

// observeFindings records one revision's findings evaluation.
func (m *Metrics) observeFindings(tenantID string, _ /* changes */, events int, took time.Duration) {
	m.findingsEval.WithLabelValues(tenantID).Observe(took.Seconds())
	m.findingsEvents.WithLabelValues(tenantID).Add(float64(events))
}

// observe counts a decision. It is safe on a nil *Metrics.
func (m *Metrics) observe(question string, d *pb.Decision) {
	if m == nil || d == nil {
		return
	}
	m.decisions.WithLabelValues(question, verdictLabel(d.GetVerdict()), verdictLabel(d.GetEntraVerdict())).Inc()
	for _, v := range d.GetViolations() {
		m.violations.WithLabelValues(v.GetRule().String()).Inc()
	}
	for _, w := range d.GetWarnings() {
		m.warnings.WithLabelValues(w.GetRule().String()).Inc()
	}
}

func verdictLabel(v pb.Verdict) string {
	switch v {
	case pb.Verdict_VERDICT_ALLOW:
		return "allow"
	case pb.Verdict_VERDICT_DENY:
		return "deny"
	}
	return "unspecified"
}

// tenantCollector reports every tenant's revision, object counts and replication lag at scrape time.
type tenantCollector struct{ store store.Store }

var (
	revisionDesc = prometheus.NewDesc("groupgate_tenant_revision", "The directory revision this replica serves.", []string{"tenant"}, nil)
	storeRevDesc = prometheus.NewDesc("groupgate_tenant_store_revision", "The newest revision the store holds.", []string{"tenant"}, nil)
	lagDesc      = prometheus.NewDesc("groupgate_tenant_replication_lag_seconds", "How far this replica trails the store.", []string{"tenant"}, nil)
	objectsDesc  = prometheus.NewDesc("groupgate_tenant_objects", "Objects in the tenant's directory, by kind.", []string{"tenant", "kind"}, nil)
)

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- revisionDesc
	ch <- storeRevDesc
	ch <- lagDesc
	ch <- objectsDesc
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, t := range c.store.Tenants() {
		st, err := c.store.Status(ctx, t)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(revisionDesc, prometheus.GaugeValue, float64(st.Revision), t)
		ch <- prometheus.MustNewConstMetric(storeRevDesc, prometheus.GaugeValue, float64(st.StoreRevision), t)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, st.Lag.Seconds(), t)
		for kind, n := range map[string]int64{
			"user": st.Counts.Users, "guest": st.Counts.Guests, "group": st.Counts.Groups,
			"service_principal": st.Counts.ServicePrincipals, "label": st.Counts.Labels, "membership": st.Counts.Memberships,
		} {
			ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(n), t, kind)
		}
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// decisionLogCollector reports what the decision log did with its records at scrape time.
type decisionLogCollector struct{ log DecisionLog }

var (
	decisionLogWrittenDesc = prometheus.NewDesc("groupgate_decision_log_written_total",
		"Decision records written to the decision log.", nil, nil)
	decisionLogDroppedDesc = prometheus.NewDesc("groupgate_decision_log_dropped_total",
		"Decision records lost: reason buffer_full (the sink fell behind; the decisions went on) or write_failed (a full disk, a lost database).",
		[]string{"reason"}, nil)
)

func (c decisionLogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- decisionLogWrittenDesc
	ch <- decisionLogDroppedDesc
}

func (c decisionLogCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.log.Stats()
	ch <- prometheus.MustNewConstMetric(decisionLogWrittenDesc, prometheus.CounterValue, float64(st.Written))
	ch <- prometheus.MustNewConstMetric(decisionLogDroppedDesc, prometheus.CounterValue, float64(st.Dropped), "buffer_full")
	ch <- prometheus.MustNewConstMetric(decisionLogDroppedDesc, prometheus.CounterValue, float64(st.Failed), "write_failed")
}
