package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/api/v1/apiv1connect"
	"github.com/taisen-dev/taisen/internal/wire"
)

// Format is the encoding of socket frames.
type Format uint8

// The socket frame formats.
const (
	// FormatDefault means the client's format (binary unless WithFormat
	// says otherwise).
	FormatDefault Format = iota
	// FormatBinary is binary protobuf frames, the compact default.
	FormatBinary
	// FormatJSON is protojson text frames, readable in browser tools.
	FormatJSON
)

// String returns "binary", "json" or "default".
func (f Format) String() string {
	switch f {
	case FormatBinary:
		return "binary"
	case FormatJSON:
		return "json"
	}
	return "default"
}

// ParseFormat parses "binary" (or "proto", "protobuf") and "json".
func ParseFormat(s string) (Format, error) {
	wf, err := wire.ParseFormat(s)
	if err != nil {
		return FormatDefault, fmt.Errorf("client: %w", err)
	}
	if wf == wire.JSON {
		return FormatJSON, nil
	}
	return FormatBinary, nil
}

func (f Format) wire() wire.Format {
	if f == FormatJSON {
		return wire.JSON
	}
	return wire.Binary
}

// DefaultDialTimeout bounds connecting a socket: TCP connect, WebSocket
// upgrade and authentication, up to Welcome.
const DefaultDialTimeout = 10 * time.Second

// Client talks to one taisen deployment: its HTTP API and its socket
// endpoint. It is safe for concurrent use; one Client can dial any number of
// sockets.
type Client struct {
	base        *url.URL
	httpClient  *http.Client
	ownsHTTP    bool
	auth        apiv1connect.AuthServiceClient
	format      Format
	log         *slog.Logger
	dialTimeout time.Duration
	netDialer   net.Dialer
	localAddr   netip.Addr
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client of the HTTP API calls. By default the
// Client uses its own transport, whose idle connections Close releases.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.httpClient, c.ownsHTTP = hc, false
		}
	}
}

// WithFormat sets the default socket frame format (FormatBinary unless
// set).
func WithFormat(f Format) Option {
	return func(c *Client) {
		if f != FormatDefault {
			c.format = f
		}
	}
}

// WithLogger sets the logger; the Client logs nothing by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// WithDialTimeout bounds connecting a socket up to its Welcome
// (DefaultDialTimeout unless set).
func WithDialTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.dialTimeout = d
		}
	}
}

// WithNetDialer sets the dialer of socket TCP connections (keep-alive,
// local address, control function). The dialer is copied.
func WithNetDialer(d *net.Dialer) Option {
	return func(c *Client) {
		if d != nil {
			c.netDialer = *d
		}
	}
}

// WithLocalAddr sets the local (source) IP address of socket connections,
// for example to spread many sockets over 127.0.0.x so they do not run out
// of ephemeral ports. DialOptions.LocalAddr overrides it per socket.
func WithLocalAddr(ip netip.Addr) Option {
	return func(c *Client) { c.localAddr = ip }
}

// New returns a Client for the deployment whose client listener is at
// baseURL ("http://127.0.0.1:7350"; https for TLS). The socket endpoint is
// baseURL's path plus "/ws", over ws or wss.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: base url %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: base url %q has no host", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{
		base:        u,
		format:      FormatBinary,
		log:         slog.New(slog.DiscardHandler),
		dialTimeout: DefaultDialTimeout,
		netDialer:   net.Dialer{KeepAlive: 30 * time.Second},
	}
	for _, o := range opts {
		o(c)
	}
	if c.httpClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		c.httpClient, c.ownsHTTP = &http.Client{Transport: tr}, true
	}
	c.auth = apiv1connect.NewAuthServiceClient(c.httpClient, u.String())
	return c, nil
}

// BaseURL returns the base URL the Client was created with.
func (c *Client) BaseURL() string { return c.base.String() }

// Close releases the idle HTTP connections of the Client's own transport
// (not those of a client set with WithHTTPClient). Sockets are closed on
// their own; the Client stays usable.
func (c *Client) Close() error {
	if c.ownsHTTP {
		c.httpClient.CloseIdleConnections()
	}
	return nil
}

// Authenticate checks a credential over the HTTP API and returns the new
// session (with create, an unknown credential creates an account). A
// server error is a *Error.
func (c *Client) Authenticate(ctx context.Context, req *apiv1.AuthenticateRequest) (*apiv1.AuthenticateResponse, error) {
	if req == nil {
		return nil, errors.New("client: authenticate: nil request")
	}
	resp, err := c.auth.Authenticate(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("client: authenticate: %w", fromConnect(ctx, err))
	}
	return resp.Msg, nil
}

// AuthenticateDevice authenticates with a device id (10-128 printable ASCII
// characters).
func (c *Client) AuthenticateDevice(ctx context.Context, deviceID string, create bool) (*apiv1.AuthenticateResponse, error) {
	return c.Authenticate(ctx, &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: deviceID}},
		Create:     create,
	})
}

// AuthenticateEmail authenticates with an email address and password.
func (c *Client) AuthenticateEmail(ctx context.Context, email, password string, create bool) (*apiv1.AuthenticateResponse, error) {
	return c.Authenticate(ctx, &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Email{Email: &apiv1.EmailCredential{Email: email, Password: password}},
		Create:     create,
	})
}

// Refresh exchanges a refresh token for a new session (a new session token
// and refresh token).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*apiv1.Session, error) {
	resp, err := c.auth.Refresh(ctx, connect.NewRequest(&apiv1.RefreshRequest{RefreshToken: refreshToken}))
	if err != nil {
		return nil, fmt.Errorf("client: refresh: %w", fromConnect(ctx, err))
	}
	return resp.Msg.GetSession(), nil
}

// socketURL returns the WebSocket URL for the given query.
func (c *Client) socketURL(q url.Values) string {
	u := *c.base
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path += "/ws"
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String()
}
