package taisen

import (
	"errors"
	"fmt"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// Code is a stable error code of the protocol: the client receives it in
// the Error reply of a request (and the Go client in client.Error.Code).
// Codes come from the append-only table ErrorCode of taisen.realtime.v1;
// docs/protocol.md §8 describes each one.
type Code = realtimev1.ErrorCode

// The codes an RPC handler may return. Codes that only the server's own
// machinery sends (BAD_CID, TOO_MANY_IN_FLIGHT, UNKNOWN_RPC, ...) are not
// listed; returning them from game code confuses clients.
const (
	// CodeInternal: something failed on the server; retrying later may
	// work. Any error that is not an *Error reaches the client as this.
	CodeInternal Code = realtimev1.ErrorCode_ERROR_CODE_INTERNAL
	// CodeBadRequest: the request is malformed or a field is invalid (the
	// equivalent of gRPC's InvalidArgument).
	CodeBadRequest Code = realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
	// CodeNotFound: something the request names does not exist.
	CodeNotFound Code = realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND
	// CodeAlreadyExists: what the request would create exists already.
	CodeAlreadyExists Code = realtimev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	// CodePermissionDenied: the caller may not do this.
	CodePermissionDenied Code = realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	// CodeRateLimited: the caller does this too often; retry later.
	CodeRateLimited Code = realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED
	// CodeUnavailable: the service cannot serve this now; retry.
	CodeUnavailable Code = realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE
	// CodeTimeout: the operation took too long (the server also sends it
	// when a handler outlives its 10 s deadline).
	CodeTimeout Code = realtimev1.ErrorCode_ERROR_CODE_TIMEOUT
	// CodeConflict: the request lost a race with a concurrent change;
	// the client should re-read the state and try again.
	CodeConflict Code = realtimev1.ErrorCode_ERROR_CODE_CONFLICT
	// CodeFailedPrecondition: the current state does not allow the
	// request (not enough currency, the match already started).
	CodeFailedPrecondition Code = realtimev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
)

// Error is an error an RPC handler returns to send the client a specific
// code and message. The client receives exactly Code and Message; Err is
// a cause for the server's own log and is never sent. The server finds an
// *Error anywhere in the returned error's chain, so wrapping it with
// fmt.Errorf("...: %w", err) keeps its code. Any other error reaches the
// client as CodeInternal with the message "internal error", and is logged.
type Error struct {
	// Code is what the client switches on.
	Code Code
	// Message explains the error to the client's programmer; it is sent
	// as is, so keep secrets and internals out of it.
	Message string
	// Err is an optional cause, kept for errors.Is/As and logs.
	Err error
}

// NewError returns an *Error with a code and a message formatted like
// fmt.Sprintf (format is used as is when there are no args).
func NewError(code Code, format string, args ...any) *Error {
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	return &Error{Code: code, Message: format}
}

// Error implements error: "not_found: no item 42".
func (e *Error) Error() string {
	s := apierr.CodeName(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &taisen.Error{Code: taisen.CodeNotFound}) checks a code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ClientError returns the code and message the client receives. The
// server uses it to recognise the error; game code does not need it.
func (e *Error) ClientError() (Code, string) { return e.Code, e.Message }

var _ apierr.ClientError = (*Error)(nil)

var (
	// ErrOffline means the user has no live or resumable session in the
	// cluster: Push delivered nothing.
	ErrOffline = errors.New("taisen: user is offline")
	// ErrNotStarted means the Server was used before Start (or Run).
	ErrNotStarted = errors.New("taisen: server not started")
)
