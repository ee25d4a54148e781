package client

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/taisentest"
)

// httpCounter counts the HTTP API requests a Client makes, passing them
// on to the real transport.
type httpCounter struct {
	n  atomic.Int64
	rt http.RoundTripper
}

func (h *httpCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	h.n.Add(1)
	return h.rt.RoundTrip(r)
}

// countingClient returns a Client whose HTTP API requests are counted.
func countingClient(t *testing.T, n *taisentest.Node, opts ...Option) (*Client, *httpCounter) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	hc := &httpCounter{rt: tr}
	return newTestClient(t, n, append(opts, WithHTTPClient(&http.Client{Transport: hc}))...), hc
}

func loginSock(t *testing.T, c *Client, cred *apiv1.AuthenticateRequest, o DialOptions) *Socket {
	t.Helper()
	s, err := c.Login(testCtx(t), cred, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestIntegrationLoginCreatesThenFindsAccount(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, format := range []Format{FormatBinary, FormatJSON} {
		t.Run(format.String(), func(t *testing.T) {
			c, hc := countingClient(t, n, WithFormat(format))
			dev := newDevice(t)

			s := loginSock(t, c, DeviceCredential(dev, true), DialOptions{})
			assert.True(t, s.Created(), "a new device creates its account")
			e := nextEvent(t, s, EventConnected)
			assert.True(t, e.Welcome.GetCreated())
			sess := s.Session()
			require.NotNil(t, sess)
			assert.NotEmpty(t, sess.GetToken())
			assert.NotEmpty(t, sess.GetRefreshToken())
			assert.Greater(t, sess.GetTokenExpiresAtMs(), time.Now().UnixMilli())
			user := s.Welcome().GetUserId()
			require.NotEmpty(t, user)
			assert.Equal(t, user, sess.GetUserId())
			out, err := s.RPC(testCtx(t), "taisen.echo", []byte("signed in"))
			require.NoError(t, err)
			assert.Equal(t, "signed in", string(out))
			require.NoError(t, s.Close())

			// The same device again, still asking to create: the account
			// exists.
			s2 := loginSock(t, c, DeviceCredential(dev, true), DialOptions{})
			assert.False(t, s2.Created(), "an existing device finds its account")
			assert.Equal(t, user, s2.Welcome().GetUserId())
			assert.NotEqual(t, s.SessionID(), s2.SessionID())

			// The tokens from the Welcome connect a socket with Dial.
			require.NoError(t, s2.Close())
			s3 := dial(t, c, DialOptions{Session: s2.Session()})
			assert.Equal(t, user, s3.Welcome().GetUserId())
			assert.False(t, s3.Created())

			assert.Zero(t, hc.n.Load(), "signing in and dialing made HTTP requests")
		})
	}
}

func TestIntegrationLoginRefused(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c, hc := countingClient(t, n)
	for _, tc := range []struct {
		name string
		cred *apiv1.AuthenticateRequest
		want realtimev1.ErrorCode
	}{
		{name: "unknown device without create", cred: DeviceCredential(newDevice(t), false), want: realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS},
		{name: "malformed device id", cred: DeviceCredential("short", true), want: realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST},
		{name: "unknown custom id without create", cred: CustomCredential("custom-"+newDevice(t), false), want: realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.Login(testCtx(t), tc.cred, DialOptions{AutoReconnect: true})
			require.Error(t, err)
			assert.Nil(t, s)
			var e *Error
			require.ErrorAs(t, err, &e, "err = %v", err)
			assert.Equal(t, tc.want, e.Code, "err = %v", err)
			assert.NotEmpty(t, e.Message)
			assert.ErrorIs(t, err, &Error{Code: tc.want})
		})
	}

	// A wrong password of an existing email account.
	email := newDevice(t) + "@example.com"
	s := loginSock(t, c, EmailCredential(email, "correct horse battery", true), DialOptions{})
	require.True(t, s.Created())
	require.NoError(t, s.Close())
	_, err := c.Login(testCtx(t), EmailCredential(email, "wrong password!", false), DialOptions{})
	assert.Equal(t, realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS, CodeOf(err), "err = %v", err)
	assert.Zero(t, hc.n.Load(), "a refused login made HTTP requests")
}

func TestLoginRejectsBadArguments(t *testing.T) {
	c, err := New("http://127.0.0.1:1")
	require.NoError(t, err)
	ctx := testCtx(t)
	_, err = c.Login(ctx, nil, DialOptions{})
	assert.ErrorContains(t, err, "a credential is required")
	_, err = c.Login(ctx, &apiv1.AuthenticateRequest{Create: true}, DialOptions{})
	assert.ErrorContains(t, err, "a credential is required")
	_, err = c.Login(ctx, DeviceCredential("device-0000001", true), DialOptions{Session: &apiv1.Session{Token: "t"}})
	assert.ErrorContains(t, err, "Session is set")
}

// A socket opened by Login reconnects and resumes with the token from its
// Welcome: the pushes sent while it was away arrive once each, in order,
// and no HTTP request is made.
func TestIntegrationLoginReconnectResumes(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c, hc := countingClient(t, n)
	s := loginSock(t, c, DeviceCredential(newDevice(t), true), DialOptions{AutoReconnect: true,
		Backoff: Backoff{Min: 500 * time.Millisecond, Max: 500 * time.Millisecond}})
	nextEvent(t, s, EventConnected)
	user := s.Welcome().GetUserId()
	first := s.SessionID()
	token := s.Session().GetToken()
	ctx := testCtx(t)

	_, err := n.Push(ctx, user, "test", []byte{1})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), nextPush(t, s).GetSeq())

	dropConn(t, s)
	nextEvent(t, s, EventReconnecting)
	for i := 2; i <= 4; i++ {
		_, err := n.Push(ctx, user, "test", []byte{byte(i)})
		require.NoError(t, err)
	}
	e := nextEvent(t, s, EventResumed, EventReset)
	require.Equal(t, EventResumed, e.Kind, "session was not resumed")
	assert.Equal(t, first, s.SessionID())
	assert.Equal(t, uint32(3), e.Welcome.GetReplayed())
	assert.False(t, e.Welcome.GetCreated())
	assert.Nil(t, e.Welcome.GetSession(), "the reconnection presented the token, not the credential")
	for i := 2; i <= 4; i++ {
		p := nextPush(t, s)
		assert.Equal(t, uint64(i), p.GetSeq())
		assert.Equal(t, []byte{byte(i)}, p.GetPayload())
	}
	assert.Equal(t, token, s.Session().GetToken(), "the session tokens are kept across the reconnection")
	assert.True(t, s.Created(), "Created describes the first connection")
	out, err := s.RPC(ctx, "taisen.echo", []byte("after resume"))
	require.NoError(t, err)
	assert.Equal(t, "after resume", string(out))
	assert.Zero(t, hc.n.Load(), "login, reconnection and resume made HTTP requests")

	require.NoError(t, s.Close())
	assert.True(t, errors.Is(s.Err(), ErrClosed))
}

// A socket opened by Login whose session token expired refreshes it over
// HTTP before reconnecting, as any socket does.
func TestIntegrationLoginRefreshesExpiredToken(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c, hc := countingClient(t, n)
	s := loginSock(t, c, DeviceCredential(newDevice(t), true), DialOptions{AutoReconnect: true, Backoff: fastBackoff})
	nextEvent(t, s, EventConnected)
	first := s.SessionID()
	// Pretend the token from the Welcome expired.
	s.mu.Lock()
	s.session.TokenExpiresAtMs = time.Now().Add(-time.Minute).UnixMilli()
	old := s.session.GetRefreshToken()
	s.mu.Unlock()

	dropConn(t, s)
	e := nextEvent(t, s, EventTokenRefreshed)
	assert.NotEqual(t, old, e.Session.GetRefreshToken())
	e = nextEvent(t, s, EventResumed, EventReset)
	require.Equal(t, EventResumed, e.Kind)
	assert.Equal(t, first, s.SessionID())
	assert.Equal(t, int64(1), hc.n.Load(), "one HTTP request: the refresh")
}
