package notify

import (
	"context"
	"net/http"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// Error codes the service answers with.
const (
	apiNotFound           = realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND
	apiPermissionDenied   = realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	apiFailedPrecondition = realtimev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
)

// RegisterOps adds the socket operations notify.* and presence.*.
func (s *Service) RegisterOps(r *gateway.Registry) error {
	for _, err := range []error{
		gateway.RegisterTyped(r, "notify.inbox.list", s.ListInbox),
		gateway.RegisterTyped(r, "notify.inbox.delete", s.DeleteInbox),
		gateway.RegisterTyped(r, "notify.topics.subscribe", s.SubscribeSelf),
		gateway.RegisterTyped(r, "notify.topics.unsubscribe", s.UnsubscribeSelf),
		gateway.RegisterTyped(r, "notify.topics.list", s.ListMyTopics),
		gateway.RegisterTyped(r, "presence.status.set", s.SetStatus),
		gateway.RegisterTyped(r, "presence.follow", s.Follow),
		gateway.RegisterTyped(r, "presence.unfollow", s.Unfollow),
		r.HandleAck(s.onAck),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Handler returns the admin NotifyService; the caller authenticates
// callers (server key).
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return adminv1connect.NewNotifyServiceHandler(adminHandler{s}, opts...)
}

type adminHandler struct{ s *Service }

var _ adminv1connect.NotifyServiceHandler = adminHandler{}

func noteOf(id, subject string, content []byte, contentJSON, sender string, ttlMs int64, mode apiv1.NotifyMode) (Note, error) {
	n := Note{ID: id, Subject: subject, Content: content, Sender: sender, TTL: time.Duration(ttlMs) * time.Millisecond, Mode: mode}
	if contentJSON != "" {
		if len(content) > 0 {
			return n, apierr.BadRequest("content and content_json: give one")
		}
		n.Content, n.ContentType = []byte(contentJSON), "application/json"
	}
	return n, nil
}

func (h adminHandler) Send(ctx context.Context, req *connect.Request[adminv1.SendRequest]) (*connect.Response[adminv1.SendResponse], error) {
	m := req.Msg
	n, err := noteOf(m.Id, m.Subject, m.Content, m.ContentJson, m.Sender, m.TtlMs, m.Mode)
	if err != nil {
		return nil, apierr.ToConnect(err)
	}
	id, outcomes, err := h.s.Send(ctx, m.UserIds, n)
	if err != nil {
		return nil, h.fail("send", err)
	}
	resp := &adminv1.SendResponse{Id: id}
	for i, u := range m.UserIds {
		resp.Results = append(resp.Results, &adminv1.SendResult{UserId: u, Outcome: outcomes[i]})
	}
	return connect.NewResponse(resp), nil
}

func (h adminHandler) CreateTopic(ctx context.Context, req *connect.Request[adminv1.CreateTopicRequest]) (*connect.Response[adminv1.CreateTopicResponse], error) {
	t, err := h.s.CreateTopic(ctx, req.Msg)
	if err != nil {
		return nil, h.fail("create topic", err)
	}
	return connect.NewResponse(&adminv1.CreateTopicResponse{Topic: t}), nil
}

func (h adminHandler) DeleteTopic(ctx context.Context, req *connect.Request[adminv1.DeleteTopicRequest]) (*connect.Response[adminv1.DeleteTopicResponse], error) {
	ok, err := h.s.DeleteTopic(ctx, req.Msg.Name)
	if err != nil {
		return nil, h.fail("delete topic", err)
	}
	return connect.NewResponse(&adminv1.DeleteTopicResponse{Deleted: ok}), nil
}

func (h adminHandler) ListTopics(ctx context.Context, req *connect.Request[adminv1.ListTopicsRequest]) (*connect.Response[adminv1.ListTopicsResponse], error) {
	ts, next, err := h.s.ListTopics(ctx, req.Msg.Cursor, int(req.Msg.Limit))
	if err != nil {
		return nil, h.fail("list topics", err)
	}
	return connect.NewResponse(&adminv1.ListTopicsResponse{Topics: ts, NextCursor: next}), nil
}

func (h adminHandler) Subscribe(ctx context.Context, req *connect.Request[adminv1.SubscribeRequest]) (*connect.Response[adminv1.SubscribeResponse], error) {
	n, err := h.s.Subscribe(ctx, req.Msg.Topic, req.Msg.UserIds)
	if err != nil {
		return nil, h.fail("subscribe", err)
	}
	return connect.NewResponse(&adminv1.SubscribeResponse{Changed: uint32(n)}), nil
}

func (h adminHandler) Unsubscribe(ctx context.Context, req *connect.Request[adminv1.UnsubscribeRequest]) (*connect.Response[adminv1.UnsubscribeResponse], error) {
	n, err := h.s.Unsubscribe(ctx, req.Msg.Topic, req.Msg.UserIds)
	if err != nil {
		return nil, h.fail("unsubscribe", err)
	}
	return connect.NewResponse(&adminv1.UnsubscribeResponse{Changed: uint32(n)}), nil
}

func (h adminHandler) Publish(ctx context.Context, req *connect.Request[adminv1.PublishRequest]) (*connect.Response[adminv1.PublishResponse], error) {
	m := req.Msg
	n, err := noteOf(m.Id, m.Subject, m.Content, m.ContentJson, m.Sender, m.TtlMs, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED)
	if err != nil {
		return nil, apierr.ToConnect(err)
	}
	id, retained, dup, err := h.s.Publish(ctx, m.Topic, n, m.Retain)
	if err != nil {
		return nil, h.fail("publish", err)
	}
	return connect.NewResponse(&adminv1.PublishResponse{Id: id, Retained: retained, Duplicate: dup}), nil
}

func (h adminHandler) GetPresence(ctx context.Context, req *connect.Request[adminv1.GetPresenceRequest]) (*connect.Response[adminv1.GetPresenceResponse], error) {
	ps, err := h.s.GetPresence(ctx, req.Msg.UserIds)
	if err != nil {
		return nil, h.fail("get presence", err)
	}
	return connect.NewResponse(&adminv1.GetPresenceResponse{Presences: ps}), nil
}

// fail maps an error to Connect; unexpected ones are logged.
func (h adminHandler) fail(op string, err error) error {
	if _, internal := apierr.From(err); internal {
		h.s.log.Error("notify admin "+op, "err", err)
	}
	return apierr.ToConnect(err)
}
