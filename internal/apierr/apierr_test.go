package apierr

import (
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// gameError is an error type of another package that carries a client
// code, like the public taisen.Error.
type gameError struct {
	code realtimev1.ErrorCode
	msg  string
}

func (e *gameError) Error() string               { return "game: " + e.msg }
func (e *gameError) ClientError() (Code, string) { return e.code, e.msg }

func newGame(c realtimev1.ErrorCode, msg string) error { return &gameError{c, msg} }
func wrapf(err error, what string) error               { return fmt.Errorf("%s: %w", what, err) }
func notFound(msg string) error                        { return newGame(realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND, msg) }

func TestFrom(t *testing.T) {
	plain := errors.New("disk on fire")
	apiErr := New(realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, "bad %s", "thing")
	tests := []struct {
		name         string
		err          error
		wantCode     realtimev1.ErrorCode
		wantMsg      string
		wantInternal bool
	}{
		{"plain error", plain, realtimev1.ErrorCode_ERROR_CODE_INTERNAL, "internal error", true},
		{"apierr", apiErr, realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, "bad thing", false},
		{"wrapped apierr", wrapf(apiErr, "handler"), realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, "bad thing", false},
		{"foreign client error", notFound("no such item"), realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such item", false},
		{"wrapped foreign client error", wrapf(notFound("no such item"), "inventory"), realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such item", false},
		{"outermost wins", &gameError{realtimev1.ErrorCode_ERROR_CODE_CONFLICT, "retry"}, realtimev1.ErrorCode_ERROR_CODE_CONFLICT, "retry", false},
		{"outermost apierr over inner game error", Wrap(realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, notFound("x"), "timed out"), realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, "timed out", false},
		{"unspecified code is internal", newGame(realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED, "?"), realtimev1.ErrorCode_ERROR_CODE_INTERNAL, "internal error", true},
		{"unknown code is internal", newGame(realtimev1.ErrorCode(9999), "?"), realtimev1.ErrorCode_ERROR_CODE_INTERNAL, "internal error", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, internal := From(tt.err)
			if e.Code != tt.wantCode || e.Message != tt.wantMsg || internal != tt.wantInternal {
				t.Errorf("From = (%v, %q, %v), want (%v, %q, %v)", e.Code, e.Message, internal, tt.wantCode, tt.wantMsg, tt.wantInternal)
			}
			// The whole error stays reachable for the log.
			var inner *Error
			if errors.As(tt.err, &inner) && inner.Code == tt.wantCode {
				if e != inner {
					t.Errorf("From(%v) = %p, want the *Error in the chain %p", tt.err, e, inner)
				}
			} else if e.Err != tt.err {
				t.Errorf("From(%v) lost the cause: Err = %v", tt.err, e.Err)
			}
		})
	}
	if e, internal := From(nil); e != nil || internal {
		t.Errorf("From(nil) = %v, %v", e, internal)
	}
	if e, _ := From(apiErr); e != apiErr {
		t.Error("From(*Error) should return the same *Error")
	}
}

func TestEveryCodeHasAConnectCode(t *testing.T) {
	for v := range realtimev1.ErrorCode_name {
		c := realtimev1.ErrorCode(v)
		got := ConnectCode(c)
		if c == realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			if got != connect.CodeUnknown {
				t.Errorf("ConnectCode(%v) = %v, want unknown", c, got)
			}
			continue
		}
		if got == connect.CodeUnknown {
			t.Errorf("ConnectCode(%v) has no mapping: add it to connectCodes", c)
		}
	}
}

func TestToConnect(t *testing.T) {
	err := ToConnect(wrapf(notFound("no such item"), "inventory"))
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("ToConnect = %T, want *connect.Error", err)
	}
	if ce.Code() != connect.CodeNotFound || ce.Message() != "no such item" || ce.Meta().Get(CodeHeader) != "not_found" {
		t.Errorf("got %v %q %q", ce.Code(), ce.Message(), ce.Meta().Get(CodeHeader))
	}
	conflict := ToConnect(newGame(realtimev1.ErrorCode_ERROR_CODE_CONFLICT, "x"))
	if connect.CodeOf(conflict) != connect.CodeAborted {
		t.Errorf("conflict → %v, want aborted", connect.CodeOf(conflict))
	}
}
