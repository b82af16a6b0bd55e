package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/registry"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Cluster membership and per-node status. Every node keeps a record in the
// KV bucket NodesBucket, refreshed every heartbeat and expiring when the
// node stops; every node answers status requests for a database on
// statusSubject, so a node can report every copy's applied sequence.

// NodesBucket is the KV bucket of live nodes.
const NodesBucket = "hasvc_nodes"

const (
	heartbeat     = 2 * time.Second
	nodeTTL       = 3 * heartbeat
	statusSubject = "hasvc.status."
	statusWait    = 300 * time.Millisecond
)

// Node is a live node's record.
type Node struct {
	Name      string    `json:"name"`
	HTTP      string    `json:"http,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// startCluster starts the heartbeat, the status responder and the watch
// that closes databases deleted by other nodes.
func (e *Engine) startCluster(ctx context.Context) error {
	self, _ := json.Marshal(Node{Name: e.Node, HTTP: e.Advertise, StartedAt: e.now().UTC()})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var kv jetstream.KeyValue
	err := registry.UntilReady(ctx, 5*time.Second, func(ctx context.Context) error {
		var err error
		kv, err = e.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      NodesBucket,
			Description: "hasvc live nodes",
			TTL:         nodeTTL,
			Storage:     jetstream.MemoryStorage,
			Replicas:    e.Replicas,
		})
		if err == nil {
			_, err = kv.Put(ctx, e.Node, self)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("register node in %s: %w", NodesBucket, err)
	}
	e.nodes = kv
	// The node's slot: where its eventual-mode rowids come from.
	err = registry.UntilReady(ctx, 5*time.Second, func(ctx context.Context) error {
		var err error
		e.slot, err = e.Registry.NodeSlot(ctx, e.Node)
		return err
	})
	if err != nil {
		return fmt.Errorf("take a node slot: %w", err)
	}
	e.countOthers(ctx)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				// Leave at once rather than expire.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				kv.Delete(ctx, e.Node)
				cancel()
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), heartbeat)
				if _, err := kv.Put(ctx, e.Node, self); err != nil {
					e.Logger.Warn("heartbeat", "err", err)
				}
				e.countOthers(ctx)
				cancel()
			}
		}
	}()

	sub, err := e.NC.Subscribe(statusSubject+"*", e.answerStatus)
	if err != nil {
		return err
	}
	e.statusSub = sub
	if e.forwardSub, err = e.NC.Subscribe(forwardSubject+e.Node, e.serveForwarded); err != nil {
		return err
	}
	if e.remoteTxSub, err = e.NC.Subscribe(forwardTxSubject+e.Node, e.serveRemoteTx); err != nil {
		return err
	}
	if err := e.replies.start(e.NC); err != nil {
		return err
	}

	wctx, cancel := context.WithCancel(context.Background())
	e.stopWatch = cancel
	rw, err := e.Registry.Watch(wctx)
	if err != nil {
		return err
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		rw.Run(wctx, func(cfg tenant.Config) {
			e.registryView.changed(cfg)
			e.configChanged(cfg)
		}, func(name string) {
			e.registryView.deleted(name)
			e.dropDeleted(name)
		})
	}()
	return nil
}

// configChanged brings the open copy of a database up to a changed
// configuration (its limits: the rest never changes).
func (e *Engine) configChanged(cfg tenant.Config) {
	e.mu.Lock()
	ent := e.dbs[cfg.Name]
	e.mu.Unlock()
	if ent == nil {
		return
	}
	select {
	case <-ent.ready:
	default:
		return // it opens with the registry's newest entry
	}
	if ent.db == nil {
		return
	}
	if err := ent.db.setLimits(context.Background(), cfg); err != nil {
		e.Logger.Error("apply changed limits", "db", cfg.Name, "err", err)
	}
}

// dropDeleted drops the local copy of a database that another node (or
// this one) deleted. Closing waits for requests in flight.
func (e *Engine) dropDeleted(name string) {
	if err := e.withFiles(name, func() error { return e.removeLocalFiles(name) }); err != nil {
		e.Logger.Error("remove the files of a deleted database", "db", name, "err", err)
	}
}

// countOthers counts the live nodes other than this one. While there are
// none, no other node can write, and open databases do not follow their
// streams: following costs a delivery per own write. A node that appears
// starts them within a heartbeat; until then a write here that it beat to
// the stream catches up first (strong mode), and a read asking for a
// sequence catches up before it runs.
func (e *Engine) countOthers(ctx context.Context) {
	// The keys alone: reading every record too costs a round trip each,
	// and under link latency a slow listing cut short by its deadline
	// would count live nodes as gone.
	lister, err := e.nodes.ListKeys(ctx)
	if err != nil {
		return
	}
	others := int64(0)
	for k := range lister.Keys() {
		if k != e.Node {
			others++
		}
	}
	if ctx.Err() != nil {
		return // the listing may be incomplete
	}
	e.others.Store(others)
}

// alone reports whether no other node is live.
func (e *Engine) alone() bool { return e.others.Load() == 0 }

// stopCluster undoes startCluster's subscriptions; the heartbeat stops with
// e.stop.
func (e *Engine) stopCluster() {
	if e.statusSub != nil {
		e.statusSub.Unsubscribe()
	}
	// Forwarded requests: new ones are turned away (the subscription
	// goes with the connection), those running finish and are answered.
	e.stopping.Store(true)
	for deadline := time.Now().Add(e.publishTimeout()); e.forwarding.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if e.replies.sub != nil {
		e.replies.sub.Unsubscribe()
	}
	if e.stopWatch != nil {
		e.stopWatch()
	}
}

// answerStatus replies with this node's view of one database.
func (e *Engine) answerStatus(m *nats.Msg) {
	name := strings.TrimPrefix(m.Subject, statusSubject)
	info := NodeInfo{Node: e.Node}
	e.mu.Lock()
	ent, ok := e.dbs[name]
	e.mu.Unlock()
	if ok {
		select {
		case <-ent.ready:
			if ent.db != nil {
				info.Open = true
				info.AppliedSeq = ent.db.Applied()
				info.Stuck = ent.db.Stuck()
				info.QueuedWrites = ent.db.queued.Load()
				p50, p99, n := ent.db.lag.percentiles()
				info.LagP50ms, info.LagP99ms, info.LagCount = ms(p50), ms(p99), n
			}
		default:
		}
	}
	if !info.Open && !e.Memory {
		if seq, err := appliedInFile(e.dsn(name)); err == nil {
			info.AppliedSeq = seq
		} else if !errors.Is(err, os.ErrNotExist) {
			return
		}
	}
	data, _ := json.Marshal(info)
	m.Respond(data)
}

// appliedInFile reads the applied sequence of a closed database's file.
func appliedInFile(dsn string) (uint64, error) {
	var seq int64
	err := readFile(dsn, func(c *sqlite.Conn) error {
		var err error
		seq, err = c.QueryInt64("SELECT applied_seq FROM _hasvc_state")
		return err
	})
	return uint64(seq), err
}

// readFile runs fn on a read-only connection to the database file of dsn
// (hasvc's own SQL); os.ErrNotExist if there is no such file.
func readFile(dsn string, fn func(*sqlite.Conn) error) error {
	if _, err := os.Stat(strings.TrimPrefix(dsn, "file:")); err != nil {
		return err
	}
	c, err := sqlite.Open(dsn+"?mode=ro", sqlite.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Internal(func() error { return fn(c) })
}

// nodeViews asks every live node for its view of database name.
func (e *Engine) nodeViews(ctx context.Context, name string, last uint64) ([]NodeInfo, error) {
	// The live nodes say how many answers to wait for; without them (the
	// bucket of live nodes can lack a leader for a while after a
	// partition), the answers that come within statusWait.
	want := 0
	if live, err := e.Nodes(ctx); err == nil {
		want = len(live)
	}
	inbox := e.NC.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := e.NC.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := e.NC.PublishRequest(statusSubject+name, inbox, nil); err != nil {
		return nil, err
	}
	got := map[string]NodeInfo{}
	timeout := time.After(statusWait)
collect:
	for want == 0 || len(got) < want {
		select {
		case m := <-replies:
			var ni NodeInfo
			if json.Unmarshal(m.Data, &ni) == nil {
				got[ni.Node] = ni
			}
		case <-timeout:
			break collect
		case <-ctx.Done():
			break collect
		}
	}
	out := make([]NodeInfo, 0, len(got))
	for _, ni := range got {
		ni.Lag = last - min(ni.AppliedSeq, last)
		out = append(out, ni)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Nodes returns the live nodes.
func (e *Engine) Nodes(ctx context.Context) ([]Node, error) {
	if e.nodes == nil {
		return []Node{{Name: e.Node, HTTP: e.Advertise}}, nil
	}
	lister, err := e.nodes.ListKeys(ctx)
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "nodes unavailable")
	}
	var out []Node
	for k := range lister.Keys() {
		entry, err := e.nodes.Get(ctx, k)
		if err != nil {
			continue
		}
		var n Node
		if json.Unmarshal(entry.Value(), &n) == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ClusterInfo is the cluster as this node sees it.
type ClusterInfo struct {
	Node      string `json:"node"`
	Version   string `json:"version,omitempty"` // this node's build
	Nodes     []Node `json:"nodes"`
	JetStream any    `json:"jetstream,omitempty"`
}

// Ready returns nil when the node can serve writes: JetStream's meta
// group and the registry have their quorum. Otherwise the error says why.
func (e *Engine) Ready(ctx context.Context) error {
	if e.NC.Status() != nats.CONNECTED {
		return tenant.Errorf(tenant.EUNAVAILABLE, "not connected to NATS (%s)", e.NC.Status())
	}
	// Account info comes from JetStream's meta leader: without a quorum
	// of the cluster, databases cannot be created or placed.
	if _, err := e.JS.AccountInfo(ctx); err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "JetStream unavailable: "+err.Error())
	}
	if err := e.health.check(e.now(), e.publishTimeout()); err != nil {
		return err
	}
	for _, d := range e.openDBs() {
		// Eventual-mode writes queue rather than fail: a node whose
		// queued writes do not go out cannot serve writes either.
		if s := d.stalled(e.now()); s > 2*e.publishTimeout() {
			return tenant.Errorf(tenant.EUNAVAILABLE, "%d writes of database %s are queued on this node and the stream has taken none for %s", d.queued.Load(), d.name, s.Round(time.Second))
		}
	}
	if e.Durable != nil {
		if err := e.Durable.Err(); err != nil {
			return tenant.Wrap(tenant.EUNAVAILABLE, err, "the disk failed an fsync; writes cannot be made durable: "+err.Error())
		}
	}
	return e.Registry.Ready(ctx)
}

// Cluster returns the live nodes and, with an embedded server, JetStream's
// view of its cluster (meta leader, peers and their lag).
func (e *Engine) Cluster(ctx context.Context) (*ClusterInfo, error) {
	nodes, err := e.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	ci := &ClusterInfo{Node: e.Node, Version: e.Version, Nodes: nodes}
	if e.JetStreamView != nil {
		v, err := e.JetStreamView()
		if err != nil {
			return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "jetstream view: "+err.Error())
		}
		ci.JetStream = v
	}
	return ci, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
