package auth

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/api/v1/apiv1connect"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// maxRequestBytes bounds an AuthService request body; the largest valid
// request (an email credential with username) is well under 1 KiB.
const maxRequestBytes = 16 << 10

// handler adapts Service to the generated Connect interface.
type handler struct {
	s *Service
}

// NewHandler returns s as a Connect AuthService. Errors reach the client
// through apierr.ToConnect: the Connect code plus the taisen code in the
// Taisen-Error-Code metadata. Internal errors are logged whole and reach
// the client as a generic "internal error".
func NewHandler(s *Service) apiv1connect.AuthServiceHandler {
	return handler{s: s}
}

// HTTPHandler returns the path to mount AuthService on and its HTTP
// handler (Connect, gRPC and gRPC-Web; JSON and binary). Request bodies are
// limited to 16 KiB unless opts say otherwise.
func HTTPHandler(s *Service, opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append([]connect.HandlerOption{connect.WithReadMaxBytes(maxRequestBytes)}, opts...)
	return apiv1connect.NewAuthServiceHandler(NewHandler(s), opts...)
}

// Authenticate implements apiv1connect.AuthServiceHandler.
func (h handler) Authenticate(ctx context.Context, req *connect.Request[apiv1.AuthenticateRequest]) (*connect.Response[apiv1.AuthenticateResponse], error) {
	res, err := h.s.Authenticate(ctx, req.Msg)
	if err != nil {
		return nil, h.toConnect(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(res), nil
}

// Refresh implements apiv1connect.AuthServiceHandler.
func (h handler) Refresh(ctx context.Context, req *connect.Request[apiv1.RefreshRequest]) (*connect.Response[apiv1.RefreshResponse], error) {
	res, err := h.s.Refresh(ctx, req.Msg)
	if err != nil {
		return nil, h.toConnect(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(res), nil
}

// toConnect logs err as it deserves and converts it for the client.
func (h handler) toConnect(ctx context.Context, procedure string, err error) error {
	e, internal := apierr.From(err)
	switch {
	case !internal:
		h.s.log.DebugContext(ctx, "auth: request failed", "procedure", procedure, "code", apierr.CodeName(e.Code), "err", err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The client gave up or its deadline passed (typically while
		// queued for the password hasher): not a server fault.
		h.s.log.InfoContext(ctx, "auth: request abandoned", "procedure", procedure, "err", err)
		err = apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, err, "request timed out or was cancelled")
	default:
		h.s.log.ErrorContext(ctx, "auth: internal error", "procedure", procedure, "err", err)
	}
	return apierr.ToConnect(err)
}
