package control

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
)

// Registry reads the node records of the cluster.
type Registry struct {
	kv  bus.Bucket
	log *slog.Logger
}

// NewRegistry opens the "nodes" bucket. replicas is the number of copies
// in a NATS cluster (as for Heartbeat).
func NewRegistry(ctx context.Context, b KVOpener, replicas int, log *slog.Logger) (*Registry, error) {
	kv, err := openBucket(ctx, b, replicas)
	if err != nil {
		return nil, fmt.Errorf("control: registry: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{kv: kv, log: log}, nil
}

// List returns the record of every live node, sorted by node id. It reads
// the bucket (one pass over the live keys), so it sees a node from its
// first heartbeat until its record's TTL after its last one. A record that
// does not decode is logged and left out.
func (r *Registry) List(ctx context.Context) ([]*clusterv1.NodeRecord, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := r.kv.Watch(wctx, ">")
	if err != nil {
		return nil, fmt.Errorf("control: list nodes: %w", err)
	}
	var nodes []*clusterv1.NodeRecord
	for ev := range events {
		if ev.Op == bus.KVSynced {
			slices.SortFunc(nodes, func(a, b *clusterv1.NodeRecord) int { return strings.Compare(a.NodeId, b.NodeId) })
			return nodes, nil
		}
		if ev.Op != bus.KVPut {
			continue
		}
		rec := &clusterv1.NodeRecord{}
		if err := proto.Unmarshal(ev.Entry.Value, rec); err != nil {
			r.log.Error("undecodable node record", "key", ev.Entry.Key, "err", err)
			continue
		}
		nodes = append(nodes, rec)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("control: list nodes: %w", err)
	}
	return nil, fmt.Errorf("control: list nodes: %w", bus.ErrClosed)
}

// Handler returns the admin NodeService's path and handler. The caller
// authenticates callers (server key), as for SessionService.
func (r *Registry) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return adminv1connect.NewNodeServiceHandler(nodeService{r}, opts...)
}

// nodeService serves taisen.admin.v1.NodeService.
type nodeService struct{ r *Registry }

var _ adminv1connect.NodeServiceHandler = nodeService{}

func (s nodeService) ListNodes(ctx context.Context, _ *connect.Request[adminv1.ListNodesRequest]) (*connect.Response[adminv1.ListNodesResponse], error) {
	nodes, err := s.r.List(ctx)
	if err != nil {
		s.r.log.Error("admin list nodes", "err", err)
		return nil, apierr.ToConnect(err)
	}
	return connect.NewResponse(&adminv1.ListNodesResponse{Nodes: nodes}), nil
}
