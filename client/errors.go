package client

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// Code is a stable error code of the protocol (the append-only table
// ErrorCode of taisen.realtime.v1; docs/protocol.md §8). The constants below
// name every code; a server may send codes newer than this package: treat
// an unknown one like CodeInternal.
type Code = realtimev1.ErrorCode

// The error codes, as in docs/protocol.md §8. The server's game code
// returns the same values (taisen.CodeNotFound is CodeNotFound).
const (
	CodeInternal             Code = realtimev1.ErrorCode_ERROR_CODE_INTERNAL
	CodeBadRequest           Code = realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
	CodeUnauthenticated      Code = realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED
	CodeInvalidCredentials   Code = realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS
	CodeTokenExpired         Code = realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED
	CodeNotFound             Code = realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND
	CodeAlreadyExists        Code = realtimev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	CodeRateLimited          Code = realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED
	CodeTooManyInFlight      Code = realtimev1.ErrorCode_ERROR_CODE_TOO_MANY_IN_FLIGHT
	CodeUnknownRPC           Code = realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC
	CodePermissionDenied     Code = realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	CodeUnavailable          Code = realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE
	CodeAlreadyAuthenticated Code = realtimev1.ErrorCode_ERROR_CODE_ALREADY_AUTHENTICATED
	CodeBadCID               Code = realtimev1.ErrorCode_ERROR_CODE_BAD_CID
	CodeTimeout              Code = realtimev1.ErrorCode_ERROR_CODE_TIMEOUT
	CodeConflict             Code = realtimev1.ErrorCode_ERROR_CODE_CONFLICT
	CodeFailedPrecondition   Code = realtimev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
	CodeBusy                 Code = realtimev1.ErrorCode_ERROR_CODE_BUSY
)

// Error is an error reported by the server for a request: an HTTP API call,
// a socket request, or the authentication of a socket. Code is stable and
// safe to switch on; Message is for humans. errors.Is(err,
// &client.Error{Code: client.CodeNotFound}) checks a code.
type Error struct {
	// Code is the server's error code.
	Code Code
	// Message is the server's explanation.
	Message string
	// Err is the transport error the code was decoded from, if any (for
	// example the *connect.Error of an HTTP call).
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return "taisen: " + CodeName(e.Code)
	}
	return "taisen: " + CodeName(e.Code) + ": " + e.Message
}

// Unwrap returns the transport error the code was decoded from.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &client.Error{Code: c}) checks the code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of the *Error in err's chain, or
// ERROR_CODE_UNSPECIFIED when there is none.
func CodeOf(err error) realtimev1.ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED
}

// CodeName is the short lower-case name of an error code ("token_expired"),
// as the server writes it in the Taisen-Error-Code header.
func CodeName(c realtimev1.ErrorCode) string { return apierr.CodeName(c) }

// CloseError says why the server closed a socket for good (or, with
// Reconnect set, why a socket that does not reconnect automatically
// ended).
type CloseError struct {
	// Reason is the server's close reason.
	Reason realtimev1.CloseReason
	// Message is the server's explanation, possibly empty.
	Message string
	// Reconnect is the server's advice: true when reconnecting (and
	// resuming) is expected to work.
	Reconnect bool
}

// Error implements error.
func (e *CloseError) Error() string {
	s := "client: socket closed by the server: " + wire.ReasonName(e.Reason)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is a *CloseError with the same reason.
func (e *CloseError) Is(target error) bool {
	t, ok := target.(*CloseError)
	return ok && t.Reason == e.Reason
}

// ReasonOf returns the close reason of the *CloseError in err's chain, or
// CLOSE_REASON_UNSPECIFIED when there is none.
func ReasonOf(err error) realtimev1.CloseReason {
	var e *CloseError
	if errors.As(err, &e) {
		return e.Reason
	}
	return realtimev1.CloseReason_CLOSE_REASON_UNSPECIFIED
}

var (
	// ErrClosed means the socket was closed by the application (Close).
	ErrClosed = errors.New("client: socket closed")
	// ErrDisconnected means the connection dropped while a request was in
	// flight: the server may or may not have processed it. Errors matching
	// it also wrap the cause of the drop.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrFrameTooLarge means a request would exceed the server's
	// Welcome.max_frame_bytes; it was not sent.
	ErrFrameTooLarge = errors.New("client: frame larger than the server accepts")
)

// ShouldReconnect reports whether a socket closed with reason r may
// reconnect: false for replaced, kicked, normal (logout), policy violation
// and failed authentication, true otherwise. The server states it in
// Disconnect.reconnect, from the same table; this is the fallback for a
// close frame that came without a Disconnect.
func ShouldReconnect(r realtimev1.CloseReason) bool { return wire.Reconnect(r) }

// retryable reports whether a request or handshake that failed with code c
// may succeed when simply tried again later.
func retryable(c realtimev1.ErrorCode) bool {
	switch c {
	case realtimev1.ErrorCode_ERROR_CODE_INTERNAL,
		realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED,
		realtimev1.ErrorCode_ERROR_CODE_TOO_MANY_IN_FLIGHT,
		realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE,
		realtimev1.ErrorCode_ERROR_CODE_TIMEOUT,
		realtimev1.ErrorCode_ERROR_CODE_BUSY:
		return true
	}
	return false
}

// codeFromName parses a code name as written in the Taisen-Error-Code
// header ("token_expired"); the full enum name is accepted too.
func codeFromName(name string) (realtimev1.ErrorCode, bool) {
	name = strings.TrimSpace(name)
	if name == "" {
		return 0, false
	}
	full := strings.ToUpper(name)
	if !strings.HasPrefix(full, "ERROR_CODE_") {
		full = "ERROR_CODE_" + full
	}
	v, ok := realtimev1.ErrorCode_value[full]
	if !ok || v == 0 {
		return 0, false
	}
	return realtimev1.ErrorCode(v), true
}

// codeFromConnect is the fallback mapping of a Connect code, for an error
// that carries no Taisen-Error-Code (a proxy, an old server).
func codeFromConnect(c connect.Code) realtimev1.ErrorCode {
	switch c {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
	case connect.CodeFailedPrecondition:
		return realtimev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
	case connect.CodeAborted:
		return realtimev1.ErrorCode_ERROR_CODE_CONFLICT
	case connect.CodeUnauthenticated:
		return realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED
	case connect.CodePermissionDenied:
		return realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	case connect.CodeNotFound:
		return realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND
	case connect.CodeAlreadyExists:
		return realtimev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	case connect.CodeResourceExhausted:
		return realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED
	case connect.CodeUnavailable:
		return realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE
	case connect.CodeDeadlineExceeded, connect.CodeCanceled:
		return realtimev1.ErrorCode_ERROR_CODE_TIMEOUT
	}
	return realtimev1.ErrorCode_ERROR_CODE_INTERNAL
}

// codeFromHTTPStatus maps the status of a refused WebSocket upgrade that
// carries no Taisen-Error-Code.
func codeFromHTTPStatus(status int) realtimev1.ErrorCode {
	switch {
	case status == http.StatusBadRequest:
		return realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
	case status == http.StatusUnauthorized:
		return realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED
	case status == http.StatusForbidden:
		return realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	case status == http.StatusNotFound:
		return realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND
	case status == http.StatusTooManyRequests:
		return realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED
	case status == http.StatusServiceUnavailable, status == http.StatusBadGateway, status == http.StatusGatewayTimeout:
		return realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE
	case status >= 500:
		return realtimev1.ErrorCode_ERROR_CODE_INTERNAL
	}
	return realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
}

// fromConnect converts an error of the generated Connect client into an
// *Error. Cancellation by the caller's own context stays a context error,
// and an error that is not a *connect.Error is returned unchanged.
func fromConnect(ctx context.Context, err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	if code, ok := codeFromName(ce.Meta().Get(apierr.CodeHeader)); ok {
		return &Error{Code: code, Message: ce.Message(), Err: err}
	}
	if ctx.Err() != nil && (ce.Code() == connect.CodeCanceled || ce.Code() == connect.CodeDeadlineExceeded) {
		return err
	}
	return &Error{Code: codeFromConnect(ce.Code()), Message: ce.Message(), Err: err}
}
