package server

import (
	"sync"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// syncRounds remembers, per tenant, the newest successful round of `groupgate sync` written through this
// replica (WriteChanges or ImportSnapshot carrying a SyncRound). It lives in memory: after a restart it is
// empty until the sync's next round, at most one --interval later. Behind a load balancer each replica knows
// the rounds it received; the freshest replica's figure (min over replicas) is the tenant's.
type syncRounds struct {
	mu    sync.Mutex
	asOf  map[string]time.Time // Graph data as of (round start)
	wrote map[string]time.Time // when the round was received
}

func newSyncRounds() *syncRounds {
	return &syncRounds{asOf: map[string]time.Time{}, wrote: map[string]time.Time{}}
}

// record notes a successful round; round may be nil (a write that is not a sync round).
func (s *syncRounds) record(tenant string, round *pb.SyncRound) {
	if round == nil {
		return
	}
	now := time.Now()
	asOf := now.Add(-max(round.GetStartedAgo().AsDuration(), 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.asOf[tenant]; ok && prev.After(asOf) {
		return // an older round arriving late (a retry) does not make the tenant look fresher
	}
	s.asOf[tenant], s.wrote[tenant] = asOf, now
}

// last returns when the tenant's newest round was received and how old its data is now.
func (s *syncRounds) last(tenant string) (received time.Time, lag time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	asOf, ok := s.asOf[tenant]
	if !ok {
		return time.Time{}, 0, false
	}
	return s.wrote[tenant], time.Since(asOf), true
}

var (
	syncLagDesc = prometheus.NewDesc("groupgate_sync_lag_seconds",
		"Age of the Graph data of the newest successful groupgate sync round received by this replica (now - round start).", []string{"tenant"}, nil)
	syncLastDesc = prometheus.NewDesc("groupgate_sync_last_success_timestamp_seconds",
		"When this replica received the newest successful groupgate sync round, as a Unix time.", []string{"tenant"}, nil)
)

func (s *syncRounds) Describe(ch chan<- *prometheus.Desc) {
	ch <- syncLagDesc
	ch <- syncLastDesc
}

func (s *syncRounds) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	s.mu.Lock()
	metrics := make([]prometheus.Metric, 0, 2*len(s.asOf))
	for t, asOf := range s.asOf {
		metrics = append(metrics,
			prometheus.MustNewConstMetric(syncLagDesc, prometheus.GaugeValue, now.Sub(asOf).Seconds(), t),
			prometheus.MustNewConstMetric(syncLastDesc, prometheus.GaugeValue, float64(s.wrote[t].UnixNano())/1e9, t))
	}
	s.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}
