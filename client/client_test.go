package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

func TestBackoffDelay(t *testing.T) {
	zero := func() float64 { return 0 }
	one := func() float64 { return 1 }
	half := func() float64 { return 0.5 }
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		{name: "default first", b: Backoff{}, attempt: 0, rnd: zero, want: 250 * time.Millisecond},
		{name: "default doubles", b: Backoff{}, attempt: 3, rnd: zero, want: 2 * time.Second},
		{name: "default capped", b: Backoff{}, attempt: 30, rnd: zero, want: 30 * time.Second},
		{name: "huge attempt does not overflow", b: Backoff{}, attempt: 1 << 30, rnd: zero, want: 30 * time.Second},
		{name: "default jitter halves at most", b: Backoff{}, attempt: 0, rnd: one, want: 125 * time.Millisecond},
		{name: "custom no jitter", b: Backoff{Min: time.Second, Max: 5 * time.Second}, attempt: 2, rnd: one, want: 4 * time.Second},
		{name: "custom capped", b: Backoff{Min: time.Second, Max: 5 * time.Second}, attempt: 3, rnd: one, want: 5 * time.Second},
		{name: "custom jitter", b: Backoff{Min: time.Second, Max: time.Second, Jitter: 1}, attempt: 0, rnd: half, want: 500 * time.Millisecond},
		{name: "nil rnd means no jitter", b: Backoff{}, attempt: 1, rnd: nil, want: 500 * time.Millisecond},
		{name: "min only takes default max", b: Backoff{Min: time.Minute}, attempt: 1, rnd: zero, want: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.b.Delay(tt.attempt, tt.rnd))
		})
	}
}

func TestBackoffValidate(t *testing.T) {
	tests := []struct {
		name    string
		b       Backoff
		wantErr bool
	}{
		{name: "zero", b: Backoff{}},
		{name: "fine", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: 0.2}},
		{name: "max below min", b: Backoff{Min: time.Minute, Max: time.Second}, wantErr: true},
		{name: "negative jitter", b: Backoff{Min: time.Second, Jitter: -0.1}, wantErr: true},
		{name: "jitter above one", b: Backoff{Min: time.Second, Jitter: 1.5}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.Validate()
			assert.Equal(t, tt.wantErr, err != nil, "err = %v", err)
		})
	}
}

func TestSeqTracker(t *testing.T) {
	welcome := func(id string, resumed bool) *realtimev1.Welcome {
		return &realtimev1.Welcome{SessionId: id, Resumed: resumed}
	}
	type step struct {
		welcome *realtimev1.Welcome // apply a Welcome, or
		push    uint64              // offer a push and deliver it if accepted
		want    welcomeOutcome
		wantOK  bool
		wantGap bool
	}
	tests := []struct {
		name     string
		start    seqTracker
		steps    []step
		wantLast uint64
		wantSess string
	}{
		{
			name: "fresh session delivers in order",
			steps: []step{
				{welcome: welcome("a", false), want: outcomeConnected},
				{push: 1, wantOK: true},
				{push: 2, wantOK: true},
				{push: 3, wantOK: true},
			},
			wantLast: 3, wantSess: "a",
		},
		{
			name: "duplicates after resume are dropped",
			steps: []step{
				{welcome: welcome("a", false), want: outcomeConnected},
				{push: 1, wantOK: true},
				{push: 2, wantOK: true},
				{welcome: welcome("a", true), want: outcomeResumed},
				{push: 1},
				{push: 2},
				{push: 3, wantOK: true},
			},
			wantLast: 3, wantSess: "a",
		},
		{
			name: "reset restarts the sequence",
			steps: []step{
				{welcome: welcome("a", false), want: outcomeConnected},
				{push: 1, wantOK: true},
				{push: 2, wantOK: true},
				{welcome: welcome("b", false), want: outcomeReset},
				{push: 1, wantOK: true},
			},
			wantLast: 1, wantSess: "b",
		},
		{
			name: "resumed flag for another session is a reset",
			steps: []step{
				{welcome: welcome("a", false), want: outcomeConnected},
				{push: 5, wantOK: true, wantGap: true},
				{welcome: welcome("b", true), want: outcomeReset},
				{push: 1, wantOK: true},
			},
			wantLast: 1, wantSess: "b",
		},
		{
			name:  "persisted resume",
			start: seqTracker{session: "a", last: 7},
			steps: []step{
				{welcome: welcome("a", true), want: outcomeResumed},
				{push: 7},
				{push: 8, wantOK: true},
				{push: 10, wantOK: true, wantGap: true},
			},
			wantLast: 10, wantSess: "a",
		},
		{
			name:  "persisted resume refused",
			start: seqTracker{session: "a", last: 7},
			steps: []step{
				{welcome: welcome("c", false), want: outcomeReset},
				{push: 1, wantOK: true},
			},
			wantLast: 1, wantSess: "c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := tt.start
			for i, st := range tt.steps {
				if st.welcome != nil {
					assert.Equal(t, st.want, tr.welcome(st.welcome), "step %d", i)
					continue
				}
				ok, gap := tr.accept(st.push)
				assert.Equal(t, st.wantOK, ok, "step %d: accept(%d)", i, st.push)
				assert.Equal(t, st.wantGap, gap, "step %d: gap", i)
				if ok {
					tr.delivered(st.push)
				}
			}
			assert.Equal(t, tt.wantLast, tr.last)
			assert.Equal(t, tt.wantSess, tr.session)
			id, last := tr.resumeFrom()
			assert.Equal(t, tt.wantSess, id)
			assert.Equal(t, tt.wantLast, last)
		})
	}
}

func TestCodeFromName(t *testing.T) {
	tests := []struct {
		in   string
		want realtimev1.ErrorCode
		ok   bool
	}{
		{in: "token_expired", want: realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED, ok: true},
		{in: "ERROR_CODE_BAD_CID", want: realtimev1.ErrorCode_ERROR_CODE_BAD_CID, ok: true},
		{in: " invalid_credentials ", want: realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS, ok: true},
		{in: ""},
		{in: "unspecified"},
		{in: "no_such_code"},
	}
	for _, tt := range tests {
		got, ok := codeFromName(tt.in)
		assert.Equal(t, tt.ok, ok, "%q", tt.in)
		assert.Equal(t, tt.want, got, "%q", tt.in)
	}
	// Every code survives the server's naming and back.
	for v := range realtimev1.ErrorCode_name {
		if v == 0 {
			continue
		}
		c := realtimev1.ErrorCode(v)
		got, ok := codeFromName(apierr.CodeName(c))
		assert.True(t, ok, "%v", c)
		assert.Equal(t, c, got)
	}
}

func TestFromConnect(t *testing.T) {
	withMeta := func(cc connect.Code, name string) error {
		e := connect.NewError(cc, errors.New("server said no"))
		if name != "" {
			e.Meta().Set(apierr.CodeHeader, name)
		}
		return e
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		wantCode realtimev1.ErrorCode // UNSPECIFIED: not an *Error
	}{
		{name: "taisen code wins", ctx: context.Background(), err: apierr.ToConnect(apierr.New(realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED, "expired")), wantCode: realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED},
		{name: "metadata name", ctx: context.Background(), err: withMeta(connect.CodeUnauthenticated, "invalid_credentials"), wantCode: realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS},
		{name: "fallback unauthenticated", ctx: context.Background(), err: withMeta(connect.CodeUnauthenticated, ""), wantCode: realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{name: "fallback unknown code name", ctx: context.Background(), err: withMeta(connect.CodeInvalidArgument, "brand_new_code"), wantCode: realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST},
		{name: "fallback unavailable", ctx: context.Background(), err: withMeta(connect.CodeUnavailable, ""), wantCode: realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE},
		{name: "fallback unknown", ctx: context.Background(), err: withMeta(connect.CodeUnknown, ""), wantCode: realtimev1.ErrorCode_ERROR_CODE_INTERNAL},
		{name: "own cancellation stays a context error", ctx: canceled, err: connect.NewError(connect.CodeCanceled, context.Canceled)},
		{name: "not a connect error", ctx: context.Background(), err: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromConnect(tt.ctx, tt.err)
			var e *Error
			if tt.wantCode == realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
				assert.False(t, errors.As(got, &e), "got %v", got)
				assert.ErrorIs(t, got, tt.err)
				return
			}
			require.ErrorAs(t, got, &e)
			assert.Equal(t, tt.wantCode, e.Code)
			assert.NotEmpty(t, e.Message)
			assert.ErrorIs(t, got, tt.err, "the transport error stays in the chain")
		})
	}
}

func TestUpgradeError(t *testing.T) {
	tests := []struct {
		status int
		code   string
		body   string
		want   realtimev1.ErrorCode
	}{
		{status: 401, code: "token_expired", body: "session token expired\n", want: realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED},
		{status: 401, want: realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{status: 400, body: "last_seq must be an unsigned integer", want: realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST},
		{status: 503, want: realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE},
		{status: 500, want: realtimev1.ErrorCode_ERROR_CODE_INTERNAL},
		{status: 404, want: realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{status: 429, want: realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED},
	}
	for _, tt := range tests {
		err := upgradeError(tt.status, tt.code, tt.body)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, tt.want, e.Code, "status %d", tt.status)
		assert.NotEmpty(t, e.Message)
		assert.Contains(t, err.Error(), fmt.Sprint(tt.status))
	}
}

func TestRetryDecisions(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "network", err: io.ErrUnexpectedEOF, want: true},
		{name: "unavailable", err: &Error{Code: realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE}, want: true},
		{name: "rate limited", err: fmt.Errorf("wrapped: %w", &Error{Code: realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED}), want: true},
		{name: "invalid credentials", err: &Error{Code: realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS}},
		{name: "unauthenticated", err: &Error{Code: realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED}},
		{name: "token expired (refresh failed)", err: &Error{Code: realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED}},
		{name: "draining", err: &CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_DRAINING, Reconnect: true}, want: true},
		{name: "auth failed", err: &CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, dialRetryable(tt.err), tt.name)
	}
}

func TestShouldReconnect(t *testing.T) {
	no := map[realtimev1.CloseReason]bool{
		realtimev1.CloseReason_CLOSE_REASON_REPLACED:    true,
		realtimev1.CloseReason_CLOSE_REASON_KICKED:      true,
		realtimev1.CloseReason_CLOSE_REASON_NORMAL:      true,
		realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED: true,
		// The client has a bug or is abusive: reconnecting repeats it.
		realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION: true,
	}
	for v := range realtimev1.CloseReason_name {
		r := realtimev1.CloseReason(v)
		assert.Equal(t, !no[r], ShouldReconnect(r), "%v", r)
	}
}

func TestAfterDrop(t *testing.T) {
	replaced := &CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_REPLACED}
	draining := &CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_DRAINING, Reconnect: true}
	tests := []struct {
		name      string
		auto      bool
		closed    bool
		logout    bool
		cause     error
		wantNil   bool  // reconnect
		wantMatch error // the terminal error matches this
	}{
		{name: "drop reconnects", auto: true, cause: io.EOF, wantNil: true},
		{name: "draining reconnects", auto: true, cause: draining, wantNil: true},
		{name: "replaced is final", auto: true, cause: replaced, wantMatch: replaced},
		{name: "closed by the app", auto: true, closed: true, cause: io.EOF, wantMatch: ErrClosed},
		{name: "no auto reconnect", cause: io.EOF, wantMatch: ErrDisconnected},
		{name: "no auto reconnect keeps reason", cause: draining, wantMatch: draining},
		{name: "logging out", auto: true, logout: true, cause: io.EOF, wantMatch: ErrDisconnected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Socket{opts: DialOptions{AutoReconnect: tt.auto}, closed: tt.closed, loggingOut: tt.logout}
			err := s.afterDrop(tt.cause)
			if tt.wantNil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.wantMatch)
		})
	}
}

func TestCloseFrameError(t *testing.T) {
	ce, ok := (&closeFrameError{code: ws.StatusCode(wire.CloseCode(realtimev1.CloseReason_CLOSE_REASON_SLOW)), reason: "slow"}).asCloseError()
	require.True(t, ok)
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_SLOW, ce.Reason)
	assert.True(t, ce.Reconnect)
	ce, ok = (&closeFrameError{code: ws.StatusCode(wire.CloseCode(realtimev1.CloseReason_CLOSE_REASON_KICKED))}).asCloseError()
	require.True(t, ok)
	assert.False(t, ce.Reconnect)
	_, ok = (&closeFrameError{code: ws.StatusNormalClosure}).asCloseError()
	assert.False(t, ok)
}

// TestClientFrameCodec checks that frames the client writes are valid
// masked WebSocket frames the server's decoder accepts, in both formats.
func TestClientFrameCodec(t *testing.T) {
	frames := []*realtimev1.ClientFrame{
		{Cid: 1, Body: &realtimev1.ClientFrame_Hello{Hello: &realtimev1.Hello{Auth: &realtimev1.Hello_Token{Token: "tok"}, ResumeSessionId: "s", LastSeq: 1 << 40}}},
		{Cid: 2, Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "taisen.echo", Payload: bytes.Repeat([]byte{0xfe}, 70000)}}},
		{Cid: 3, Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{ClientTimeMs: 42}}},
		{Cid: 4, Body: &realtimev1.ClientFrame_Logout{Logout: &realtimev1.Logout{}}},
	}
	for _, f := range []wire.Format{wire.Binary, wire.JSON} {
		for _, in := range frames {
			payload, err := wire.Marshal(f, nil, in)
			require.NoError(t, err)
			op := ws.OpBinary
			if f == wire.JSON {
				op = ws.OpText
			}
			raw := appendFrame(nil, op, payload, ws.NewMask())
			got, err := ws.ReadFrame(bytes.NewReader(raw))
			require.NoError(t, err)
			assert.True(t, got.Header.Fin)
			assert.True(t, got.Header.Masked, "client frames must be masked")
			assert.Equal(t, op, got.Header.OpCode)
			got = ws.UnmaskFrameInPlace(got)
			out, err := wire.DecodeClientFrame(f, got.Payload)
			require.NoError(t, err)
			assert.True(t, proto.Equal(in, out), "%v: %v != %v", f, out, in)
		}
	}
}

func TestHandshakeURL(t *testing.T) {
	c, err := New("https://example.com:8443/base/")
	require.NoError(t, err)
	tests := []struct {
		name string
		p    connParams
		want string
	}{
		{name: "binary hello", p: connParams{format: wire.Binary, token: "t"}, want: "wss://example.com:8443/base/ws"},
		{name: "json", p: connParams{format: wire.JSON}, want: "wss://example.com:8443/base/ws?format=json"},
		{name: "url token", p: connParams{format: wire.Binary, token: "t k", urlToken: true}, want: "wss://example.com:8443/base/ws?token=t+k"},
		{name: "url token resume", p: connParams{format: wire.Binary, token: "t", urlToken: true, resumeID: "s1", lastSeq: 9}, want: "wss://example.com:8443/base/ws?last_seq=9&resume=s1&token=t"},
		{name: "url token without token uses hello", p: connParams{format: wire.Binary, urlToken: true, resumeID: "s1"}, want: "wss://example.com:8443/base/ws"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.socketURL(handshakeQuery(tt.p))
			assert.Equal(t, tt.want, got)
			_, err := url.Parse(got)
			assert.NoError(t, err)
		})
	}
	c2, err := New("http://127.0.0.1:7350")
	require.NoError(t, err)
	assert.Equal(t, "ws://127.0.0.1:7350/ws", c2.socketURL(nil))
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:7350", "ftp://x", "http://", "::bad"} {
		_, err := New(u)
		assert.Error(t, err, "%q", u)
	}
}

func TestDialOptionsNormalize(t *testing.T) {
	c, err := New("http://127.0.0.1:7350", WithFormat(FormatJSON))
	require.NoError(t, err)
	sess := &apiv1.Session{Token: "t"}
	tests := []struct {
		name    string
		o       DialOptions
		wantErr bool
	}{
		{name: "session", o: DialOptions{Session: sess}},
		{name: "credential", o: DialOptions{Authenticate: &apiv1.AuthenticateRequest{}}},
		{name: "nothing to authenticate with", o: DialOptions{}, wantErr: true},
		{name: "empty token", o: DialOptions{Session: &apiv1.Session{RefreshToken: "r"}}, wantErr: true},
		{name: "bad format", o: DialOptions{Session: sess, Format: 9}, wantErr: true},
		{name: "bad backoff", o: DialOptions{Session: sess, Backoff: Backoff{Min: time.Minute, Max: time.Second}}, wantErr: true},
		{name: "last seq without session id", o: DialOptions{Session: sess, LastSeq: 3}, wantErr: true},
		{name: "negative attempts", o: DialOptions{Session: sess, MaxReconnectAttempts: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.o.normalize(c)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, FormatJSON, o.Format, "client format is the default")
			assert.Equal(t, DefaultPushBuffer, o.PushBuffer)
			assert.Equal(t, DefaultBackoff(), o.Backoff)
			if tt.o.Session != nil {
				assert.NotSame(t, tt.o.Session, o.Session, "the socket keeps its own copy")
			}
		})
	}
}

func TestTokenExpired(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	assert.False(t, tokenExpired(&apiv1.Session{}, now), "unknown expiry")
	assert.False(t, tokenExpired(nil, now))
	assert.False(t, tokenExpired(&apiv1.Session{TokenExpiresAtMs: now.Add(time.Minute).UnixMilli()}, now))
	assert.True(t, tokenExpired(&apiv1.Session{TokenExpiresAtMs: now.Add(time.Second).UnixMilli()}, now), "within the skew")
	assert.True(t, tokenExpired(&apiv1.Session{TokenExpiresAtMs: now.Add(-time.Second).UnixMilli()}, now))
}

func TestEmitDiscardsOldest(t *testing.T) {
	s := &Socket{events: make(chan Event, eventBuffer), log: slog.New(slog.DiscardHandler)}
	for i := range eventBuffer + 5 {
		s.emit(Event{Kind: EventReconnecting, Attempt: i})
	}
	require.Len(t, s.events, eventBuffer)
	first := <-s.events
	assert.Equal(t, 5, first.Attempt, "the oldest events were discarded")
}

func TestErrorMatching(t *testing.T) {
	err := fmt.Errorf("client: rpc x: %w", &Error{Code: realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "slow down"})
	assert.ErrorIs(t, err, &Error{Code: realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED})
	assert.NotErrorIs(t, err, &Error{Code: realtimev1.ErrorCode_ERROR_CODE_INTERNAL})
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED, CodeOf(err))
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED, CodeOf(io.EOF))
	assert.Contains(t, err.Error(), "rate_limited: slow down")

	ce := fmt.Errorf("x: %w", &CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_REPLACED, Message: "elsewhere"})
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_REPLACED, ReasonOf(ce))
	assert.Contains(t, ce.Error(), "replaced: elsewhere")
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_UNSPECIFIED, ReasonOf(io.EOF))
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatBinary, "binary": FormatBinary, "proto": FormatBinary, "json": FormatJSON, "JSON": FormatJSON} {
		got, err := ParseFormat(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseFormat("xml")
	assert.ErrorIs(t, err, wire.ErrBadFormat)
}
