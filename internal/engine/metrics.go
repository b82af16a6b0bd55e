package engine

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the engine's running totals, exported as Prometheus
// counters by Collect.
type counters struct {
	writes    atomic.Uint64 // requests and transactions committed with a stream message
	conflicts atomic.Uint64 // strong-mode requests another node's write beat to the stream
	applied   atomic.Uint64 // messages from other nodes applied
	stuck     atomic.Uint64 // databases marked stuck
	forwarded atomic.Uint64 // write requests this node sent to the node leading their stream
	txRemote  atomic.Uint64 // interactive transactions this node ran on the node leading their stream
	queued    atomic.Uint64 // eventual-mode writes committed here while the stream was out of reach
}

var (
	descOpen      = prometheus.NewDesc("hasvc_databases_open", "Databases open on this node.", nil, nil)
	descApplied   = prometheus.NewDesc("hasvc_database_applied_sequence", "Last stream sequence this node's copy has applied.", []string{"database"}, nil)
	descStuck     = prometheus.NewDesc("hasvc_database_stuck", "1 if the copy cannot apply its stream (see the database's status), else 0.", []string{"database"}, nil)
	descLag       = prometheus.NewDesc("hasvc_replication_lag_seconds", "Time from a write's capture on its node to its commit here, over the last 1,024 writes from other nodes.", []string{"database", "quantile"}, nil)
	descWrites    = prometheus.NewDesc("hasvc_writes_total", "Write requests and transactions committed through the stream by this node.", nil, nil)
	descConflicts = prometheus.NewDesc("hasvc_write_conflicts_total", "Strong-mode writes rolled back and run again because another node's write reached the stream first.", nil, nil)
	descAppliedN  = prometheus.NewDesc("hasvc_messages_applied_total", "Stream messages from other nodes applied by this node.", nil, nil)
	descForwarded = prometheus.NewDesc("hasvc_writes_forwarded_total", "Write requests this node forwarded to the node that leads their database's stream.", nil, nil)
	descTxRemote  = prometheus.NewDesc("hasvc_transactions_forwarded_total", "Interactive (pgwire) transactions that wrote and ran on the node that leads their database's stream, sent there by this node.", nil, nil)
	descQueued    = prometheus.NewDesc("hasvc_database_queued_writes", "Eventual-mode writes committed on this node that wait for the stream to be reachable.", []string{"database"}, nil)
	descQueuedN   = prometheus.NewDesc("hasvc_writes_queued_total", "Eventual-mode writes committed on this node while the stream was out of reach (or behind such writes), sent to it later.", nil, nil)
	descStuckN    = prometheus.NewDesc("hasvc_databases_stuck_total", "Times a database copy was marked stuck on a message it could not apply.", nil, nil)
)

// Metrics returns the engine's Prometheus collector.
func (e *Engine) Metrics() prometheus.Collector { return collector{e} }

// collector exports the engine's state to Prometheus.
type collector struct{ e *Engine }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descApplied, descStuck, descLag, descWrites, descConflicts, descForwarded, descTxRemote, descAppliedN, descStuckN, descQueued, descQueuedN} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: per open database its applied
// sequence, whether it is stuck and its replication lag; node-wide totals.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	open := e.openDBs()
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(len(open)))
	for _, d := range open {
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(d.Applied()), d.name)
		stuck := 0.0
		if d.Stuck() != "" {
			stuck = 1
		}
		ch <- prometheus.MustNewConstMetric(descStuck, prometheus.GaugeValue, stuck, d.name)
		if d.Eventual() {
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(d.queued.Load()), d.name)
		}
		if p50, p99, n := d.lag.percentiles(); n > 0 {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, p50.Seconds(), d.name, "0.5")
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, p99.Seconds(), d.name, "0.99")
		}
	}
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(e.counters.writes.Load()))
	ch <- prometheus.MustNewConstMetric(descConflicts, prometheus.CounterValue, float64(e.counters.conflicts.Load()))
	ch <- prometheus.MustNewConstMetric(descAppliedN, prometheus.CounterValue, float64(e.counters.applied.Load()))
	ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(e.counters.forwarded.Load()))
	ch <- prometheus.MustNewConstMetric(descTxRemote, prometheus.CounterValue, float64(e.counters.txRemote.Load()))
	ch <- prometheus.MustNewConstMetric(descStuckN, prometheus.CounterValue, float64(e.counters.stuck.Load()))
	ch <- prometheus.MustNewConstMetric(descQueuedN, prometheus.CounterValue, float64(e.counters.queued.Load()))
}

// openDBs returns the databases open now and not closing. An entry's db is
// set by its opener before ready closes, and read only after.
func (e *Engine) openDBs() []*DB {
	e.mu.Lock()
	defer e.mu.Unlock()
	var open []*DB
	for _, ent := range e.dbs {
		select {
		case <-ent.ready:
		default:
			continue
		}
		if ent.db != nil && !ent.closing {
			open = append(open, ent.db)
		}
	}
	return open
}
