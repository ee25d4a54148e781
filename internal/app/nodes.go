package app

import (
	"context"
	"fmt"

	"github.com/taisen-dev/taisen/internal/control"
)

// startNodes builds the node registry: this node's heartbeat (run by Run,
// stopped before the gateway closes) and the NodeService handler.
func (a *App) startNodes(ctx context.Context, version string) error {
	var err error
	a.nodes, err = control.NewRegistry(ctx, a.bus, a.cfg.Gateway.KVReplicas, a.log.With("component", "control"))
	if err != nil {
		return fmt.Errorf("node registry: %w", err)
	}
	a.beat, err = control.NewHeartbeat(ctx, control.Config{
		NodeID: a.cfg.NodeID, Roles: []string{"gateway"}, Version: version,
		ClientAddr: a.ClientAddr(), AdminAddr: a.AdminAddr(),
		Interval: a.cfg.NodeHeartbeat, Replicas: a.cfg.Gateway.KVReplicas,
	}, control.Deps{Bus: a.bus, Load: control.LoadFunc(a.nodeLoad), Logger: a.log.With("component", "control")})
	if err != nil {
		return fmt.Errorf("node heartbeat: %w", err)
	}
	return nil
}

// nodeLoad is what the heartbeat reports. Ready is the listeners serving
// and the node not draining (the bus answers if the record gets written).
// EpollLoops is the configured number of loops: the gateway does not
// report how many are running.
func (a *App) nodeLoad() control.Load {
	st := a.gw.Stats()
	loops := 0
	if gc := a.gw.Config(); gc.Engine == "epoll" {
		loops = gc.Workers
	}
	draining := a.gw.Draining()
	return control.Load{
		Sessions: st.Sessions, Sockets: st.Sockets, DetachedSessions: st.Detached, EpollLoops: loops,
		Ready: a.ready.Load() && !draining && a.gw.Healthy() == nil, Draining: draining,
	}
}
