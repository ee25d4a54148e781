package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/api/v1/apiv1connect"
	"github.com/taisen-dev/taisen/internal/app"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

func authenticate(t *testing.T, n *taisentest.Node, device string) *apiv1.Session {
	t.Helper()
	cl := apiv1connect.NewAuthServiceClient(http.DefaultClient, n.ClientURL)
	resp, err := cl.Authenticate(context.Background(), connect.NewRequest(&apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: device}}, Create: true}))
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return resp.Msg.Session
}

func TestAdminAPINeedsServerKey(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, key := range []string{"", "wrong-key-wrong-key", n.ServerKey + "x"} {
		cl := adminv1connect.NewSessionServiceClient(http.DefaultClient, n.AdminURL, connect.WithInterceptors(connect.UnaryInterceptorFunc(
			func(next connect.UnaryFunc) connect.UnaryFunc {
				return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
					if key != "" {
						req.Header().Set("Authorization", "Bearer "+key)
					}
					return next(ctx, req)
				}
			})))
		_, err := cl.GetSession(context.Background(), connect.NewRequest(&adminv1.GetSessionRequest{UserId: "u"}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("key %q: err %v, want unauthenticated", key, err)
		}
	}
	if _, err := n.Session(context.Background(), "someone"); err != nil {
		t.Errorf("with the server key: %v", err)
	}
	if _, err := n.Session(context.Background(), ""); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("empty user id: %v, want invalid argument", err)
	}
}

func TestSecretsPersistAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := taisentest.StartNode(t, taisentest.Options{DataDir: dir})
	sess := authenticate(t, n, "device-restart-1")
	key := n.ServerKey
	n.Stop()
	n2 := taisentest.StartNode(t, taisentest.Options{DataDir: dir})
	if n2.ServerKey != key {
		t.Error("server key changed across a restart")
	}
	// The account and the token signing secret survived.
	again := authenticate(t, n2, "device-restart-1")
	if again.UserId != sess.UserId {
		t.Errorf("user id %s after restart, want %s", again.UserId, sess.UserId)
	}
	if err := os.Chmod(filepath.Join(dir, "server.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	n2.Stop()
	cfg := config.Defaults()
	cfg.DataDir, cfg.ClientAddr, cfg.AdminAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	_, err := app.New(context.Background(), cfg, app.Options{LogOutput: new(strings.Builder)})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: err %v, want advice to chmod 600", err)
	}
}

func TestListenerInUse(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.ClientAddr = strings.TrimPrefix(n.ClientURL, "http://")
	cfg.AdminAddr = "127.0.0.1:0"
	_, err := app.New(context.Background(), cfg, app.Options{LogOutput: new(strings.Builder)})
	if err == nil || !strings.Contains(err.Error(), "--client-addr") {
		t.Errorf("err %v, want a hint about --client-addr", err)
	}
}

func TestBadExternalNATS(t *testing.T) {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.ClientAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATSURL = "nats://127.0.0.1:1"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := app.New(ctx, cfg, app.Options{LogOutput: new(strings.Builder)})
	if err == nil || !strings.HasPrefix(err.Error(), "bus: ") || !strings.Contains(err.Error(), "NATS") {
		t.Errorf("err %v, want a NATS connection error", err)
	}
}

// TestNodeOnPostgres runs a node on PostgreSQL (in a fresh schema) when
// TAISEN_TEST_POSTGRES_URL is set.
func TestNodeOnPostgres(t *testing.T) {
	base := os.Getenv("TAISEN_TEST_POSTGRES_URL")
	if base == "" && os.Getenv("CI") == "true" {
		t.Fatal("CI=true but TAISEN_TEST_POSTGRES_URL is empty: the PostgreSQL tests must run in CI (.ci/run sets it)")
	}
	if base == "" {
		t.Skip("set TAISEN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "app_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	n := taisentest.StartNode(t, taisentest.Options{DatabaseURL: u.String()})
	first := authenticate(t, n, "device-pg-00001")
	second := authenticate(t, n, "device-pg-00001")
	if first.UserId == "" || first.UserId != second.UserId {
		t.Errorf("user ids %q and %q", first.UserId, second.UserId)
	}
	var count int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".accounts").Scan(&count); err != nil || count != 1 {
		t.Errorf("accounts in PostgreSQL: %d, %v", count, err)
	}
}

func TestCORS(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.CORSOrigins = "https://Game.Example.com/"
	}})
	tests := []struct {
		origin    string
		wantAllow string
	}{
		{"https://game.example.com", "https://game.example.com"},
		{"https://evil.example.com", ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodOptions, n.ClientURL+"/taisen.api.v1.AuthService/Authenticate", nil)
		req.Header.Set("Origin", tt.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,connect-protocol-version")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
			t.Errorf("origin %s: allow-origin %q, want %q", tt.origin, got, tt.wantAllow)
		}
		if tt.wantAllow != "" && (resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Connect-Protocol-Version")) {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	}
	// The actual call carries the CORS headers and exposes the error code.
	req, _ := http.NewRequest(http.MethodPost, n.ClientURL+"/taisen.api.v1.AuthService/Authenticate", strings.NewReader(`{"device":{"id":"x"}}`))
	req.Header.Set("Origin", "https://game.example.com")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Taisen-Error-Code") {
		t.Errorf("call headers: %v", resp.Header)
	}
}

func TestSharedTokenSecret(t *testing.T) {
	url := taisentest.StartNATS(t)
	secret := func(c *config.Config) { c.TokenSecret = strings.Repeat("s3cret-", 6) }
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Configure: secret})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Configure: secret})
	sess := authenticate(t, a, "device-shared-01")
	cl, err := client.New(b.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sock, err := cl.Dial(ctx, client.DialOptions{Session: sess})
	if err != nil {
		t.Fatalf("a token from node A on node B: %v", err)
	}
	defer sock.Close()
	if w := sock.Welcome(); w.GetUserId() != sess.UserId || w.GetNodeId() != b.NodeID {
		t.Errorf("welcome %v", w)
	}
	if _, err := os.Stat(filepath.Join(a.DataDir, "token.secret")); err == nil {
		t.Error("a token.secret file was generated although --token-secret was given")
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func itoa(i int) string { return strconv.Itoa(i) }

// syncBuffer is a bytes.Buffer safe for the node's log writer and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
