package gateway

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// adminHandler serves taisen.admin.v1.SessionService from any node: every
// call is routed over the bus to the node holding the session.
type adminHandler struct {
	g *Gateway
}

var _ adminv1connect.SessionServiceHandler = adminHandler{}

// NewAdminHandler returns the server-to-server SessionService handler.
// The caller authenticates callers (server key).
func NewAdminHandler(g *Gateway) adminv1connect.SessionServiceHandler { return adminHandler{g} }

func requireUser(id string) error {
	if id == "" || len(id) > 128 {
		return apierr.ToConnect(apierr.BadRequest("user_id is required (at most 128 characters)"))
	}
	return nil
}

func (h adminHandler) GetSession(ctx context.Context, req *connect.Request[adminv1.GetSessionRequest]) (*connect.Response[adminv1.GetSessionResponse], error) {
	if err := requireUser(req.Msg.UserId); err != nil {
		return nil, err
	}
	rec, err := h.g.Lookup(ctx, req.Msg.UserId)
	if errors.Is(err, ErrOffline) {
		return connect.NewResponse(&adminv1.GetSessionResponse{}), nil
	}
	if err != nil {
		h.g.log.Error("admin get session", "err", err)
		return nil, apierr.ToConnect(err)
	}
	return connect.NewResponse(&adminv1.GetSessionResponse{Online: true, SessionId: rec.SessionId, NodeId: rec.NodeId, SinceMs: rec.SinceMs}), nil
}

func (h adminHandler) Disconnect(ctx context.Context, req *connect.Request[adminv1.DisconnectRequest]) (*connect.Response[adminv1.DisconnectResponse], error) {
	if err := requireUser(req.Msg.UserId); err != nil {
		return nil, err
	}
	msg := req.Msg.Message
	if msg == "" {
		msg = "disconnected by the server"
	}
	ok, err := h.g.Kick(ctx, req.Msg.UserId, realtimev1.CloseReason_CLOSE_REASON_KICKED, msg)
	if err != nil {
		h.g.log.Error("admin disconnect", "err", err)
		return nil, apierr.ToConnect(err)
	}
	return connect.NewResponse(&adminv1.DisconnectResponse{Disconnected: ok}), nil
}

func (h adminHandler) SendPush(ctx context.Context, req *connect.Request[adminv1.SendPushRequest]) (*connect.Response[adminv1.SendPushResponse], error) {
	if err := requireUser(req.Msg.UserId); err != nil {
		return nil, err
	}
	if req.Msg.Kind == "" || len(req.Msg.Kind) > 64 {
		return nil, apierr.ToConnect(apierr.BadRequest("kind is required (at most 64 characters)"))
	}
	if len(req.Msg.Payload) > h.g.cfg.MaxFrameBytes-256 {
		return nil, apierr.ToConnect(apierr.BadRequest("payload larger than %d bytes", h.g.cfg.MaxFrameBytes-256))
	}
	seq, err := h.g.Deliver(ctx, req.Msg.UserId, req.Msg.Kind, req.Msg.Payload)
	if errors.Is(err, ErrOffline) {
		return connect.NewResponse(&adminv1.SendPushResponse{}), nil
	}
	if err != nil {
		h.g.log.Error("admin send push", "err", err)
		return nil, apierr.ToConnect(err)
	}
	return connect.NewResponse(&adminv1.SendPushResponse{Delivered: true, Seq: seq}), nil
}
