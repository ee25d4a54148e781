package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

// nodeClient calls a node's NodeService with key ("" sends none).
func nodeClient(n *taisentest.Node, key string) adminv1connect.NodeServiceClient {
	return adminv1connect.NewNodeServiceClient(http.DefaultClient, n.AdminURL, connect.WithInterceptors(connect.UnaryInterceptorFunc(
		func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				if key != "" {
					req.Header().Set("Authorization", "Bearer "+key)
				}
				return next(ctx, req)
			}
		})))
}

// waitNodes polls ListNodes on n until ok accepts the records, failing
// after the deadline with the last answer.
func waitNodes(t *testing.T, n *taisentest.Node, what string, ok func(map[string]*clusterv1.NodeRecord) bool) map[string]*clusterv1.NodeRecord {
	t.Helper()
	cl := nodeClient(n, n.ServerKey)
	deadline := time.Now().Add(10 * time.Second)
	var last map[string]*clusterv1.NodeRecord
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cl.ListNodes(ctx, connect.NewRequest(&adminv1.ListNodesRequest{}))
		cancel()
		lastErr = err
		if err == nil {
			last = map[string]*clusterv1.NodeRecord{}
			for _, r := range resp.Msg.Nodes {
				last[r.NodeId] = r
			}
			if ok(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not seen via %s within 10s; last answer %v (err %v)", what, n.NodeID, last, lastErr)
	return nil
}

// TestNodesHeartbeat runs two nodes on one NATS: each lists both, a node
// with a session reports it, a draining node says so, and a stopped node
// disappears after its record's TTL.
func TestNodesHeartbeat(t *testing.T) {
	url := taisentest.StartNATS(t)
	cfg := func(c *config.Config) {
		c.TokenSecret = strings.Repeat("s3cret-", 6)
		c.NodeHeartbeat = 200 * time.Millisecond // record TTL 600 ms (1 s on the bus)
		c.DrainTimeout = 3 * time.Second
	}
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Configure: cfg})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Configure: cfg})

	for _, n := range []*taisentest.Node{a, b} {
		recs := waitNodes(t, n, "both nodes ready", func(m map[string]*clusterv1.NodeRecord) bool {
			return len(m) == 2 && m[a.NodeID].GetReady() && m[b.NodeID].GetReady()
		})
		for _, peer := range []*taisentest.Node{a, b} {
			r := recs[peer.NodeID]
			if "http://"+r.GetEndpoints().GetClient() != peer.ClientURL || "http://"+r.GetEndpoints().GetAdmin() != peer.AdminURL {
				t.Errorf("%s endpoints %v, want %s and %s", peer.NodeID, r.GetEndpoints(), peer.ClientURL, peer.AdminURL)
			}
			if strings.Join(r.GetRoles(), ",") != "gateway" || r.GetVersion() == "" || r.GetDraining() ||
				r.GetStartedAt() == nil || r.GetUpdatedAt().AsTime().Before(r.GetStartedAt().AsTime()) {
				t.Errorf("%s record %v", peer.NodeID, r)
			}
		}
	}

	_, err := nodeClient(a, "").ListNodes(context.Background(), connect.NewRequest(&adminv1.ListNodesRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("ListNodes without the server key: %v, want unauthenticated", err)
	}

	// A session on a shows in its record, seen from b.
	sess := authenticate(t, a, "device-nodes-01")
	cl, err := client.New(a.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sock, err := cl.Dial(ctx, client.DialOptions{Session: sess})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	waitNodes(t, b, "a's session", func(m map[string]*clusterv1.NodeRecord) bool {
		r := m[a.NodeID]
		return r.GetSessions() == 1 && r.GetSockets() == 1
	})

	// Stopping a drains it: its session stays resumable (nobody resumes
	// it) for up to the drain timeout, and its record says draining.
	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	recs := waitNodes(t, b, "a draining", func(m map[string]*clusterv1.NodeRecord) bool {
		return m[a.NodeID].GetDraining()
	})
	if recs[a.NodeID].GetReady() {
		t.Errorf("draining node reports ready: %v", recs[a.NodeID])
	}
	if recs[b.NodeID].GetDraining() || !recs[b.NodeID].GetReady() {
		t.Errorf("the other node: %v", recs[b.NodeID])
	}
	<-stopped
	waitNodes(t, b, "a gone after its TTL", func(m map[string]*clusterv1.NodeRecord) bool {
		_, ok := m[a.NodeID]
		return !ok && len(m) == 1
	})
}
