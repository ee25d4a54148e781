// Package apierr is the one client-facing error type: a stable code from the
// append-only table realtimev1.ErrorCode and a message safe to show a
// client. Domain packages return *Error for anything a client did wrong;
// game code returns the public taisen.Error, which From recognises through
// the ClientError interface. Any other error reaches the client as
// ERROR_CODE_INTERNAL with a generic message, and the caller logs it whole.
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

// ClientError returns the code and message the client receives.
func (e *Error) ClientError() (Code, string) { return e.Code, e.Message }

// ClientError is an error that carries its own client-facing code and
// message: *Error, and errors of packages that cannot use *Error directly
// (the public taisen.Error that game code returns).
type ClientError interface {
	error
	ClientError() (code Code, message string)
}

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

// From returns err as a client-facing error. The first ClientError in err's
// chain gives the code and message: an *Error is returned as it is, any
// other ClientError is converted (keeping err as the cause). Otherwise,
// and when a ClientError names a code the protocol does not define (or
// UNSPECIFIED), From returns Internal(err) and internal reports it: the
// caller should log err.
func From(err error) (e *Error, internal bool) {
	if err == nil {
		return nil, false
	}
	var ce ClientError
	if errors.As(err, &ce) {
		if ae, ok := ce.(*Error); ok {
			return ae, false
		}
		code, msg := ce.ClientError()
		if !Defined(code) {
			return Internal(err), true
		}
		return &Error{Code: code, Message: msg, Err: err}, false
	}
	return Internal(err), true
}

// Defined reports whether c is a code of the protocol that may be sent:
// known to this build and not UNSPECIFIED.
func Defined(c Code) bool {
	_, ok := realtimev1.ErrorCode_name[int32(c)]
	return ok && c != realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED
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
	realtimev1.ErrorCode_ERROR_CODE_CONFLICT:              connect.CodeAborted,
	realtimev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION:   connect.CodeFailedPrecondition,
	realtimev1.ErrorCode_ERROR_CODE_BUSY:                  connect.CodeResourceExhausted,
}

// ConnectCode is the Connect (and gRPC) code the HTTP APIs answer with for
// c; CodeUnknown for a code without a mapping.
func ConnectCode(c Code) connect.Code {
	if cc, ok := connectCodes[c]; ok {
		return cc
	}
	return connect.CodeUnknown
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
	ce := connect.NewError(ConnectCode(e.Code), errors.New(e.Message))
	ce.Meta().Set(CodeHeader, CodeName(e.Code))
	return ce
}
