package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/api/v1/apiv1connect"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// maxRequestBytes bounds an AuthService request body; the largest valid
// request (an email credential with username) is well under 1 KiB.
const maxRequestBytes = 16 << 10

// compressMinBytes is the smallest reply worth compressing: every reply of
// these services is smaller, and compressing them costs more CPU than a
// login's whole store lookup.
const compressMinBytes = 4 << 10

// handler adapts Service to the generated Connect interface.
type handler struct {
	s *Service
}

// NewHandler returns s as a Connect AuthService. Errors reach the client
// through apierr.ToConnect: the Connect code plus the taisen code in the
// Taisen-Error-Code metadata. Internal errors are logged whole and reach
// the client as a generic "internal error". BUSY answers carry
// Retry-After.
func NewHandler(s *Service) apiv1connect.AuthServiceHandler {
	return handler{s: s}
}

// HTTPHandler returns the path to mount AuthService on and its HTTP
// handler (Connect, gRPC and gRPC-Web; JSON and binary). Request bodies are
// limited to 16 KiB unless opts say otherwise. Every error answer of the
// Connect protocol carries a Taisen-Error-Code header and a sentence,
// including those about the request itself: malformed body (400), body
// over the limit (413), unsupported Content-Type (415).
func HTTPHandler(s *Service, opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append([]connect.HandlerOption{
		connect.WithReadMaxBytes(maxRequestBytes),
		connect.WithCompressMinBytes(compressMinBytes),
	}, opts...)
	path, h := apiv1connect.NewAuthServiceHandler(NewHandler(s), opts...)
	return path, Guard(h, maxRequestBytes)
}

// Authenticate implements apiv1connect.AuthServiceHandler.
func (h handler) Authenticate(ctx context.Context, req *connect.Request[apiv1.AuthenticateRequest]) (*connect.Response[apiv1.AuthenticateResponse], error) {
	ctx = WithClientIP(ctx, h.s.clientIP(req.Peer().Addr, req.Header()))
	res, err := h.s.Authenticate(ctx, req.Msg)
	if err != nil {
		return nil, toConnect(ctx, h.s, req.Spec().Procedure, err)
	}
	return connect.NewResponse(res), nil
}

// Refresh implements apiv1connect.AuthServiceHandler.
func (h handler) Refresh(ctx context.Context, req *connect.Request[apiv1.RefreshRequest]) (*connect.Response[apiv1.RefreshResponse], error) {
	res, err := h.s.Refresh(ctx, req.Msg)
	if err != nil {
		return nil, toConnect(ctx, h.s, req.Spec().Procedure, err)
	}
	return connect.NewResponse(res), nil
}

// toConnect logs err as it deserves and converts it for the client.
func toConnect(ctx context.Context, s *Service, procedure string, err error) error {
	e, internal := apierr.From(err)
	switch {
	case !internal:
		s.log.DebugContext(ctx, "auth: request failed", "procedure", procedure, "code", apierr.CodeName(e.Code), "err", err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The client gave up or its deadline passed (typically while
		// queued for the password hasher): not a server fault.
		s.log.InfoContext(ctx, "auth: request abandoned", "procedure", procedure, "err", err)
		err = apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, err, "request timed out or was cancelled")
	default:
		s.log.ErrorContext(ctx, "auth: internal error", "procedure", procedure, "err", err)
	}
	ce := apierr.ToConnect(err)
	if e.Code == realtimev1.ErrorCode_ERROR_CODE_BUSY {
		var cerr *connect.Error
		if errors.As(ce, &cerr) {
			cerr.Meta().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		}
	}
	return ce
}

// clientIP returns the address a request comes from: the peer's, or, when
// the peer is a trusted proxy (Config.TrustedProxies), the nearest address
// in X-Forwarded-For that is not a trusted proxy. The zero Addr when it
// cannot be told.
func (s *Service) clientIP(peer string, header http.Header) netip.Addr {
	ip := parseHostIP(peer)
	if !ip.IsValid() || !s.trusted(ip) {
		return ip
	}
	hops := header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return ip // a garbled header: the last trusted hop is all we know
			}
			ip = hop.Unmap()
			if !s.trusted(ip) {
				return ip
			}
		}
	}
	return ip
}

func (s *Service) trusted(ip netip.Addr) bool {
	for _, p := range s.trustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseHostIP parses "host:port" or a bare address.
func parseHostIP(addr string) netip.Addr {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// adminHandler adapts Service to the generated admin AccountService.
type adminHandler struct {
	s *Service
}

// NewAdminHandler returns s as the admin AccountService (RevokeSessions,
// DisableAccount, EnableAccount). Mount it behind the server key.
func NewAdminHandler(s *Service) adminv1connect.AccountServiceHandler {
	return adminHandler{s: s}
}

// AdminHTTPHandler returns the path to mount the admin AccountService on
// and its HTTP handler, with the same limits and error answers as
// HTTPHandler. It does not check the server key: the caller mounts it
// behind that check.
func AdminHTTPHandler(s *Service, opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append([]connect.HandlerOption{
		connect.WithReadMaxBytes(maxRequestBytes),
		connect.WithCompressMinBytes(compressMinBytes),
	}, opts...)
	path, h := adminv1connect.NewAccountServiceHandler(NewAdminHandler(s), opts...)
	return path, Guard(h, maxRequestBytes)
}

// RevokeSessions implements adminv1connect.AccountServiceHandler.
func (h adminHandler) RevokeSessions(ctx context.Context, req *connect.Request[adminv1.RevokeSessionsRequest]) (*connect.Response[adminv1.RevokeSessionsResponse], error) {
	if err := h.s.RevokeSessions(ctx, req.Msg.GetUserId()); err != nil {
		return nil, toConnect(ctx, h.s, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&adminv1.RevokeSessionsResponse{}), nil
}

// DisableAccount implements adminv1connect.AccountServiceHandler.
func (h adminHandler) DisableAccount(ctx context.Context, req *connect.Request[adminv1.DisableAccountRequest]) (*connect.Response[adminv1.DisableAccountResponse], error) {
	if err := h.s.SetDisabled(ctx, req.Msg.GetUserId(), true); err != nil {
		return nil, toConnect(ctx, h.s, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&adminv1.DisableAccountResponse{}), nil
}

// EnableAccount implements adminv1connect.AccountServiceHandler.
func (h adminHandler) EnableAccount(ctx context.Context, req *connect.Request[adminv1.EnableAccountRequest]) (*connect.Response[adminv1.EnableAccountResponse], error) {
	if err := h.s.SetDisabled(ctx, req.Msg.GetUserId(), false); err != nil {
		return nil, toConnect(ctx, h.s, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&adminv1.EnableAccountResponse{}), nil
}

// Guard wraps a Connect handler so that the errors Connect answers by
// itself on the Connect protocol (gRPC and gRPC-Web pass untouched),
// before any handler runs, look like the handlers' own: a
// Taisen-Error-Code header, a Connect JSON error body with a sentence
// instead of Go internals, and 413 (not 429) for a body over maxBytes.
// Errors that already carry Taisen-Error-Code pass untouched.
func Guard(next http.Handler, maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			// gRPC and gRPC-Web report errors in trailers under HTTP 200,
			// with the code in grpc-status: leave them to Connect.
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > maxBytes {
			writeProtocolError(w, http.StatusRequestEntityTooLarge, maxBytes)
			return
		}
		gw := &guardWriter{ResponseWriter: w, maxBytes: maxBytes}
		next.ServeHTTP(gw, r)
	})
}

// guardWriter replaces the error answers Connect writes without a
// Taisen-Error-Code header.
type guardWriter struct {
	http.ResponseWriter
	maxBytes    int64
	wroteHeader bool
	// replaced is set when the body Connect writes is dropped.
	replaced bool
}

func (w *guardWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if status >= 400 && w.Header().Get(apierr.CodeHeader) == "" {
		w.replaced = true
		writeProtocolError(w.ResponseWriter, status, w.maxBytes)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *guardWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for the streaming protocols.
func (w *guardWriter) Flush() {
	if w.replaced {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// protocolError describes an error Connect answered by itself.
type protocolError struct {
	status      int
	connectCode string
	code        realtimev1.ErrorCode
	message     string
}

func describeProtocolError(status int, maxBytes int64) protocolError {
	bad := realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
	switch status {
	case http.StatusBadRequest:
		return protocolError{status, "invalid_argument", bad,
			"the request body is not a valid message: it must be JSON or binary protobuf, as the Content-Type says, with the documented field names and types"}
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		// Connect reports a body over its read limit as
		// resource_exhausted (429); it is a request too large.
		return protocolError{http.StatusRequestEntityTooLarge, "resource_exhausted", bad,
			fmt.Sprintf("the request body is larger than %d bytes", maxBytes)}
	case http.StatusUnsupportedMediaType:
		return protocolError{status, "invalid_argument", bad,
			"unsupported Content-Type: send application/json or application/proto (Connect), or a gRPC or gRPC-Web content type"}
	case http.StatusNotFound:
		return protocolError{status, "not_found", realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC, "no such procedure"}
	case http.StatusMethodNotAllowed:
		return protocolError{status, "invalid_argument", bad, "use POST"}
	}
	if status >= 500 {
		return protocolError{status, "internal", realtimev1.ErrorCode_ERROR_CODE_INTERNAL, "internal error"}
	}
	return protocolError{status, "invalid_argument", bad, "the request was refused: " + strings.ToLower(http.StatusText(status))}
}

// writeProtocolError writes the error answer for an HTTP status Connect
// chose (or a body over maxBytes).
func writeProtocolError(w http.ResponseWriter, status int, maxBytes int64) {
	e := describeProtocolError(status, maxBytes)
	body, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{e.connectCode, e.message}) // two strings always marshal
	h := w.Header()
	h.Del("Content-Encoding")
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set(apierr.CodeHeader, apierr.CodeName(e.code))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
