package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/taisentest"
)

// The integration tests run a real node in-process (taisentest) and talk
// to it only through the public API of this package.

var deviceSeq atomic.Int64

// newDevice returns a device id unique to the test binary run.
func newDevice(t testing.TB) string {
	return fmt.Sprintf("client-test-%d-%d", time.Now().UnixNano(), deviceSeq.Add(1))
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestClient(t testing.TB, n *taisentest.Node, opts ...Option) *Client {
	c, err := New(n.ClientURL, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// login authenticates a new device and returns its session.
func login(t testing.TB, c *Client) *apiv1.Session {
	t.Helper()
	resp, err := c.AuthenticateDevice(testCtx(t), newDevice(t), true)
	require.NoError(t, err)
	require.True(t, resp.GetCreated())
	require.NotEmpty(t, resp.GetSession().GetToken())
	return resp.GetSession()
}

func dial(t testing.TB, c *Client, o DialOptions) *Socket {
	t.Helper()
	s, err := c.Dial(testCtx(t), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fastBackoff reconnects quickly in tests.
var fastBackoff = Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// nextEvent waits for an event of one of the kinds, skipping others.
func nextEvent(t testing.TB, s *Socket, kinds ...EventKind) Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e, ok := <-s.Events():
			require.True(t, ok, "events closed while waiting for %v", kinds)
			for _, k := range kinds {
				if e.Kind == k {
					return e
				}
			}
		case <-timeout:
			t.Fatalf("no %v event", kinds)
		}
	}
}

func nextPush(t testing.TB, s *Socket) *realtimev1.Push {
	t.Helper()
	select {
	case p, ok := <-s.Pushes():
		require.True(t, ok, "pushes closed")
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no push")
		return nil
	}
}

func waitDone(t testing.TB, s *Socket) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(15 * time.Second):
		t.Fatal("socket did not end")
		return nil
	}
}

// dropConn cuts the socket's current TCP connection without a close
// frame, like a network failure.
func dropConn(t testing.TB, s *Socket) {
	t.Helper()
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	require.NotNil(t, c, "socket not connected")
	_ = c.nc.Close()
}

func TestIntegrationAuthDialEcho(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, tc := range []struct {
		name   string
		format Format
		url    bool
	}{
		{name: "binary hello", format: FormatBinary},
		{name: "json hello", format: FormatJSON},
		{name: "binary url token", format: FormatBinary, url: true},
		{name: "json url token", format: FormatJSON, url: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, n, WithFormat(tc.format))
			sess := login(t, c)
			s := dial(t, c, DialOptions{Session: sess, UseURLToken: tc.url})
			e := nextEvent(t, s, EventConnected)
			w := s.Welcome()
			assert.Equal(t, w.GetSessionId(), e.SessionID)
			assert.Equal(t, sess.GetUserId(), w.GetUserId())
			assert.Equal(t, n.NodeID, w.GetNodeId())
			assert.False(t, w.GetResumed())
			assert.NotZero(t, w.GetHeartbeatIntervalMs())
			assert.Equal(t, w.GetSessionId(), s.SessionID())

			ctx := testCtx(t)
			out, err := s.RPC(ctx, "taisen.echo", []byte("hello taisen"))
			require.NoError(t, err)
			assert.Equal(t, "hello taisen", string(out))
			rtt, err := s.Ping(ctx)
			require.NoError(t, err)
			assert.Positive(t, rtt)

			_, err = s.RPC(ctx, "no.such.rpc", nil)
			var e2 *Error
			require.ErrorAs(t, err, &e2)
			assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC, e2.Code)

			require.NoError(t, s.Close())
			assert.ErrorIs(t, s.Err(), ErrClosed)
			_, err = s.RPC(ctx, "taisen.echo", nil)
			assert.ErrorIs(t, err, ErrClosed)
		})
	}
}

func TestIntegrationHelloWithCredential(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	dev := newDevice(t)
	s := dial(t, c, DialOptions{Authenticate: &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: dev}}, Create: true}})
	w := s.Welcome()
	assert.True(t, w.GetCreated())
	require.NotNil(t, s.Session())
	assert.NotEmpty(t, s.Session().GetRefreshToken())
	assert.Equal(t, w.GetUserId(), s.Session().GetUserId())
}

func TestIntegrationHTTPErrors(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	ctx := testCtx(t)

	_, err := c.AuthenticateDevice(ctx, "short", true)
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, CodeOf(err), "err = %v", err)

	_, err = c.AuthenticateDevice(ctx, newDevice(t), false)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS, e.Code)
	assert.NotEmpty(t, e.Message)

	_, err = c.Refresh(ctx, "not-a-refresh-token")
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, CodeOf(err), "err = %v", err)

	sess := login(t, c)
	ns, err := c.Refresh(ctx, sess.GetRefreshToken())
	require.NoError(t, err)
	assert.Equal(t, sess.GetUserId(), ns.GetUserId())
}

func TestIntegrationDialBadToken(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	for _, url := range []bool{false, true} {
		_, err := c.Dial(testCtx(t), DialOptions{Session: &apiv1.Session{Token: "garbage"}, UseURLToken: url, AutoReconnect: true})
		assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, CodeOf(err), "url=%v err = %v", url, err)
	}
	_, err := c.Dial(testCtx(t), DialOptions{Authenticate: &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: newDevice(t)}}}})
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS, CodeOf(err), "err = %v", err)
}

func TestIntegrationPushesAndResume(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, tc := range []struct {
		name   string
		format Format
		url    bool
	}{
		{name: "binary hello", format: FormatBinary},
		{name: "json url token", format: FormatJSON, url: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, n, WithFormat(tc.format))
			sess := login(t, c)
			// The reconnection waits long enough for the pushes below to
			// happen while the client is away.
			s := dial(t, c, DialOptions{Session: sess, UseURLToken: tc.url, AutoReconnect: true,
				Backoff: Backoff{Min: 500 * time.Millisecond, Max: 500 * time.Millisecond}})
			nextEvent(t, s, EventConnected)
			ctx := testCtx(t)
			first := s.SessionID()

			for i := 1; i <= 3; i++ {
				_, err := n.Push(ctx, sess.GetUserId(), "test", []byte{byte(i)})
				require.NoError(t, err)
			}
			for i := 1; i <= 3; i++ {
				p := nextPush(t, s)
				assert.Equal(t, uint64(i), p.GetSeq())
				assert.Equal(t, []byte{byte(i)}, p.GetPayload())
			}
			require.Equal(t, uint64(3), s.LastSeq())

			// Drop the connection and push while the client is away: the
			// pushes must arrive after the resume, once each, in order.
			dropConn(t, s)
			nextEvent(t, s, EventReconnecting)
			for i := 4; i <= 6; i++ {
				_, err := n.Push(ctx, sess.GetUserId(), "test", []byte{byte(i)})
				require.NoError(t, err)
			}
			e := nextEvent(t, s, EventResumed, EventReset)
			require.Equal(t, EventResumed, e.Kind, "session was not resumed")
			assert.Equal(t, uint32(3), e.Welcome.GetReplayed())
			assert.Equal(t, first, s.SessionID())
			for i := 4; i <= 6; i++ {
				p := nextPush(t, s)
				assert.Equal(t, uint64(i), p.GetSeq())
			}
			assert.Equal(t, uint64(6), s.LastSeq())
			select {
			case p := <-s.Pushes():
				t.Fatalf("unexpected extra push %v", p)
			case <-time.After(100 * time.Millisecond):
			}

			out, err := s.RPC(ctx, "taisen.echo", []byte("after resume"))
			require.NoError(t, err)
			assert.Equal(t, "after resume", string(out))
		})
	}
}

func TestIntegrationUnreadPushesWait(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	sess := login(t, c)
	s := dial(t, c, DialOptions{Session: sess, PushBuffer: 1})
	ctx := testCtx(t)
	for i := 1; i <= 10; i++ {
		_, err := n.Push(ctx, sess.GetUserId(), "test", []byte{byte(i)})
		require.NoError(t, err)
	}
	time.Sleep(100 * time.Millisecond)
	// Nothing was dropped while the application was not reading.
	for i := 1; i <= 10; i++ {
		assert.Equal(t, uint64(i), nextPush(t, s).GetSeq())
	}
}

func TestIntegrationResetAfterGrace(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.ResumeGrace = 500 * time.Millisecond
		c.Gateway.SessionTTL = 3 * time.Second
	}})
	c := newTestClient(t, n)
	sess := login(t, c)
	// Reconnect only after the grace (and the server's 1s sweep) is over.
	s := dial(t, c, DialOptions{Session: sess, AutoReconnect: true, Backoff: Backoff{Min: 2500 * time.Millisecond, Max: 2500 * time.Millisecond}})
	nextEvent(t, s, EventConnected)
	ctx := testCtx(t)
	_, err := n.Push(ctx, sess.GetUserId(), "test", []byte("one"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), nextPush(t, s).GetSeq())
	first := s.SessionID()

	dropConn(t, s)
	e := nextEvent(t, s, EventResumed, EventReset)
	require.Equal(t, EventReset, e.Kind)
	assert.NotEqual(t, first, s.SessionID())
	assert.False(t, s.Welcome().GetResumed())
	assert.Zero(t, s.LastSeq())

	_, err = n.Push(ctx, sess.GetUserId(), "test", []byte("fresh"))
	require.NoError(t, err)
	p := nextPush(t, s)
	assert.Equal(t, uint64(1), p.GetSeq(), "seq restarts on a fresh session")
	assert.Equal(t, "fresh", string(p.GetPayload()))
}

func TestIntegrationReplacedIsTerminal(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	dev := newDevice(t)
	ctx := testCtx(t)
	a1, err := c.AuthenticateDevice(ctx, dev, true)
	require.NoError(t, err)
	s1 := dial(t, c, DialOptions{Session: a1.GetSession(), AutoReconnect: true, Backoff: fastBackoff})

	a2, err := c.AuthenticateDevice(ctx, dev, false)
	require.NoError(t, err)
	s2 := dial(t, c, DialOptions{Session: a2.GetSession(), AutoReconnect: true, Backoff: fastBackoff})

	err = waitDone(t, s1)
	var ce *CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_REPLACED, ce.Reason)
	assert.False(t, ce.Reconnect)
	e := nextEvent(t, s1, EventClosed)
	assert.ErrorIs(t, e.Err, &CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_REPLACED})
	_, ok := <-s1.Pushes()
	assert.False(t, ok, "pushes closed")

	_, err = s2.RPC(ctx, "taisen.echo", nil)
	assert.NoError(t, err)
}

func TestIntegrationKickedIsTerminal(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	sess := login(t, c)
	s := dial(t, c, DialOptions{Session: sess, AutoReconnect: true, Backoff: fastBackoff})
	ok, err := n.Disconnect(testCtx(t), sess.GetUserId())
	require.NoError(t, err)
	require.True(t, ok)
	err = waitDone(t, s)
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_KICKED, ReasonOf(err), "err = %v", err)
}

func TestIntegrationLogout(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	sess := login(t, c)
	s := dial(t, c, DialOptions{Session: sess, AutoReconnect: true, Backoff: fastBackoff})
	id := s.SessionID()
	require.NoError(t, s.Logout(testCtx(t)))
	err := waitDone(t, s)
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_NORMAL, ReasonOf(err), "err = %v", err)

	// The session is gone: asking to resume it starts a fresh one.
	s2 := dial(t, c, DialOptions{Session: sess, ResumeSessionID: id, LastSeq: 0})
	e := nextEvent(t, s2, EventConnected, EventResumed, EventReset)
	assert.Equal(t, EventReset, e.Kind)
	assert.NotEqual(t, id, s2.SessionID())
}

func TestIntegrationInFlightFailsOnDrop(t *testing.T) {
	reg := gateway.NewRegistry()
	started := make(chan struct{}, 1)
	require.NoError(t, reg.Register("test.slow", func(ctx context.Context, _ gateway.Call) ([]byte, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
		return nil, nil
	}))
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg})
	c := newTestClient(t, n)
	sess := login(t, c)
	s := dial(t, c, DialOptions{Session: sess})
	errc := make(chan error, 1)
	go func() {
		_, err := s.RPC(testCtx(t), "test.slow", nil)
		errc <- err
	}()
	<-started
	dropConn(t, s)
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, ErrDisconnected)
	case <-time.After(5 * time.Second):
		t.Fatal("request in flight did not fail at the drop")
	}
	// Without AutoReconnect the socket ends with the drop.
	assert.ErrorIs(t, waitDone(t, s), ErrDisconnected)
}

func TestIntegrationRequestsQueueForSlots(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	s := dial(t, c, DialOptions{Session: login(t, c)})
	require.Equal(t, uint32(1), s.Welcome().GetMaxInFlight())
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprint(i)
			out, err := s.RPC(ctx, "taisen.echo", []byte(want))
			if err == nil && string(out) != want {
				err = fmt.Errorf("echo %q returned %q", want, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

func TestIntegrationHeartbeatKeepsIdleSocket(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.HeartbeatInterval = 200 * time.Millisecond
		c.Gateway.IdleTimeout = 700 * time.Millisecond
	}})
	c := newTestClient(t, n)
	s := dial(t, c, DialOptions{Session: login(t, c)})
	time.Sleep(2500 * time.Millisecond)
	select {
	case <-s.Done():
		t.Fatalf("idle socket closed: %v", s.Err())
	default:
	}
	_, err := s.RPC(testCtx(t), "taisen.echo", nil)
	assert.NoError(t, err)
}

func TestIntegrationTokenRefresh(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	sess := login(t, c)
	// Pretend the token expired: the client refreshes it before dialing.
	stale := &apiv1.Session{Token: sess.GetToken(), RefreshToken: sess.GetRefreshToken(), TokenExpiresAtMs: time.Now().Add(-time.Minute).UnixMilli()}
	s := dial(t, c, DialOptions{Session: stale})
	e := nextEvent(t, s, EventTokenRefreshed)
	assert.Equal(t, sess.GetUserId(), e.Session.GetUserId())
	assert.Greater(t, s.Session().GetTokenExpiresAtMs(), time.Now().UnixMilli())
	assert.Equal(t, sess.GetUserId(), s.Welcome().GetUserId())
}

func TestIntegrationDialRefused(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	sess := login(t, c)
	n.Stop()
	_, err := c.Dial(testCtx(t), DialOptions{Session: sess})
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrClosed))
}

func TestIntegrationDrainingReconnects(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := newTestClient(t, n)
	s := dial(t, c, DialOptions{Session: login(t, c), AutoReconnect: true, Backoff: fastBackoff})
	nextEvent(t, s, EventConnected)
	ctx := testCtx(t)
	go func() { _ = n.Gateway().Drain(ctx, gateway.DrainOptions{}) }()

	// The node asks the client to reconnect elsewhere...
	e := nextEvent(t, s, EventReconnecting)
	assert.Equal(t, realtimev1.CloseReason_CLOSE_REASON_DRAINING, ReasonOf(e.Err), "err = %v", e.Err)
	// ...and, being the only node, refuses it with 503 while draining:
	// the socket keeps trying instead of giving up.
	e = nextEvent(t, s, EventReconnecting)
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, CodeOf(e.Err), "err = %v", e.Err)
	assert.Nil(t, s.Err())
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Err(), ErrClosed)
}
