// Package apierr is the one client-facing error type: a stable code from the
// append-only table realtimev1.ErrorCode and a message safe to show a
// client. Domain packages return *Error for anything a client did wrong;
// any other error reaches the client as ERROR_CODE_INTERNAL with a generic
// message, and the caller logs it whole.
package apierr

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// Code is a client-facing error code.
type Code = realtimev1.ErrorCode

// Error is a client-facing error.
type Error struct {
	Code    Code
	Message string
	// Err is an optional cause, logged but never sent to a client.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", CodeName(e.Code), e.Message, e.Err)
	}
	return CodeName(e.Code) + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so errors.Is(err,
// apierr.New(code, "")) checks the code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// New returns an error with a code and message.
func New(code Code, format string, args ...any) *Error {
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	return &Error{Code: code, Message: format}
}

// Wrap returns an error with a code and message that keeps cause for logs.
func Wrap(code Code, cause error, msg string) *Error {
	return &Error{Code: code, Message: msg, Err: cause}
}

// Shorthands for the common codes.
func BadRequest(format string, args ...any) *Error {
	return New(realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, format, args...)
}

// Internal is the client-facing face of an unexpected failure.
func Internal(cause error) *Error {
	return &Error{Code: realtimev1.ErrorCode_ERROR_CODE_INTERNAL, Message: "internal error", Err: cause}
}

// From returns err as a client-facing error: itself when it is (or wraps) an
// *Error, otherwise Internal(err). internal reports the second case, which
// the caller should log.
func From(err error) (e *Error, internal bool) {
	if err == nil {
		return nil, false
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae, false
	}
	return Internal(err), true
}

// CodeName is the short lower-case name of a code ("bad_request").
func CodeName(c Code) string {
	name, ok := realtimev1.ErrorCode_name[int32(c)]
	if !ok {
		return fmt.Sprintf("code_%d", int32(c))
	}
	const prefix = "ERROR_CODE_"
	if len(name) > len(prefix) {
		name = name[len(prefix):]
	}
	b := []byte(name)
	for i, ch := range b {
		if ch >= 'A' && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

// connectCodes maps taisen codes to Connect/gRPC codes for the HTTP APIs.
var connectCodes = map[Code]connect.Code{
	realtimev1.ErrorCode_ERROR_CODE_INTERNAL:              connect.CodeInternal,
	realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST:           connect.CodeInvalidArgument,
	realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED:       connect.CodeUnauthenticated,
	realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS:   connect.CodeUnauthenticated,
	realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED:         connect.CodeUnauthenticated,
	realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND:             connect.CodeNotFound,
	realtimev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS:        connect.CodeAlreadyExists,
	realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED:          connect.CodeResourceExhausted,
	realtimev1.ErrorCode_ERROR_CODE_TOO_MANY_IN_FLIGHT:    connect.CodeResourceExhausted,
	realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC:           connect.CodeUnimplemented,
	realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED:     connect.CodePermissionDenied,
	realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE:           connect.CodeUnavailable,
	realtimev1.ErrorCode_ERROR_CODE_ALREADY_AUTHENTICATED: connect.CodeFailedPrecondition,
	realtimev1.ErrorCode_ERROR_CODE_BAD_CID:               connect.CodeInvalidArgument,
	realtimev1.ErrorCode_ERROR_CODE_TIMEOUT:               connect.CodeDeadlineExceeded,
	realtimev1.ErrorCode_ERROR_CODE_BUSY:                  connect.CodeResourceExhausted,
}

// CodeHeader is the response header (and Connect error metadata key) that
// carries the taisen code name on HTTP APIs, so HTTP clients can tell
// invalid_credentials from token_expired.
const CodeHeader = "Taisen-Error-Code"

// ToConnect converts err into a *connect.Error for a Connect handler; the
// taisen code name travels in the Taisen-Error-Code metadata.
func ToConnect(err error) error {
	if err == nil {
		return nil
	}
	e, _ := From(err)
	cc, ok := connectCodes[e.Code]
	if !ok {
		cc = connect.CodeUnknown
	}
	ce := connect.NewError(cc, errors.New(e.Message))
	ce.Meta().Set(CodeHeader, CodeName(e.Code))
	return ce
}
