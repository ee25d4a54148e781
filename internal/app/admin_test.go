package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/app"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

// noRedirect shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestAdminAccess calls every admin route without a key, with a wrong key
// and with the server key, under each flag that changes the decision.
func TestAdminAccess(t *testing.T) {
	const (
		u   = http.StatusUnauthorized
		ok  = http.StatusOK
		nf  = http.StatusNotFound
		mov = http.StatusTemporaryRedirect
	)
	type want [3]int // no key, wrong key, server key
	type route struct {
		method, path, body string
	}
	var (
		healthz    = route{"GET", "/healthz", ""}
		readyz     = route{"GET", "/readyz", ""}
		metrics    = route{"GET", "/metrics", ""}
		pprofIndex = route{"GET", "/debug/pprof/", ""}
		cmdline    = route{"GET", "/debug/pprof/cmdline", ""}
		heap       = route{"GET", "/debug/pprof/heap", ""}
		symbol     = route{"GET", "/debug/pprof/symbol", ""}
		sneaky     = route{"GET", "/healthz/../debug/pprof/cmdline", ""} // an open prefix must not open what it leads to
		session    = route{"POST", "/taisen.admin.v1.SessionService/GetSession", `{"userId":"u1"}`}
		push       = route{"POST", "/taisen.admin.v1.SessionService/SendPush", `{"userId":"u1","kind":"k"}`}
		rooms      = route{"POST", "/taisen.admin.v1.RoomService/ListRooms", `{}`}
		unknown    = route{"GET", "/no/such/path", ""}
		postHealth = route{"POST", "/healthz", ""}
	)
	tests := []struct {
		name      string
		configure func(*config.Config)
		want      map[route]want
	}{
		{"defaults", nil, map[route]want{
			healthz: {ok, ok, ok}, readyz: {ok, ok, ok}, metrics: {ok, ok, ok},
			pprofIndex: {u, u, nf}, cmdline: {u, u, nf}, heap: {u, u, nf}, symbol: {u, u, nf}, sneaky: {u, u, mov},
			session: {u, u, ok}, push: {u, u, ok}, rooms: {u, u, ok}, unknown: {u, u, nf}, postHealth: {u, u, http.StatusMethodNotAllowed},
		}},
		{"--pprof", func(c *config.Config) { c.Pprof = true }, map[route]want{
			healthz: {ok, ok, ok}, readyz: {ok, ok, ok}, metrics: {ok, ok, ok},
			pprofIndex: {u, u, ok}, cmdline: {u, u, ok}, heap: {u, u, ok}, symbol: {u, u, ok}, sneaky: {u, u, mov},
			session: {u, u, ok}, push: {u, u, ok}, unknown: {u, u, nf}, postHealth: {u, u, http.StatusMethodNotAllowed},
		}},
		{"--metrics-auth", func(c *config.Config) { c.MetricsAuth = true }, map[route]want{
			healthz: {ok, ok, ok}, readyz: {ok, ok, ok}, metrics: {u, u, ok},
			pprofIndex: {u, u, nf}, cmdline: {u, u, nf}, sneaky: {u, u, mov},
			session: {u, u, ok}, unknown: {u, u, nf},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := taisentest.StartNode(t, taisentest.Options{Configure: tt.configure})
			keys := [3]string{"", "Bearer wrong-key-wrong-key", "Bearer " + n.ServerKey}
			for rt, w := range tt.want {
				for i, key := range keys {
					var body io.Reader
					if rt.body != "" {
						body = strings.NewReader(rt.body)
					}
					req, err := http.NewRequest(rt.method, n.AdminURL+rt.path, body)
					if err != nil {
						t.Fatal(err)
					}
					if rt.body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					if key != "" {
						req.Header.Set("Authorization", key)
					}
					resp, err := noRedirect.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != w[i] {
						t.Errorf("%s %s with key #%d: %d, want %d (%s)", rt.method, rt.path, i, resp.StatusCode, w[i], got)
					}
					// The process's command line (which can carry
					// --server-key and --token-secret) never leaks
					// without the key.
					if i < 2 && bytes.Contains(got, []byte(os.Args[0])) {
						t.Errorf("%s %s with key #%d: the body shows the command line", rt.method, rt.path, i)
					}
					if i == 2 && rt == cmdline && w[i] == ok && !bytes.Contains(got, []byte(os.Args[0])) {
						t.Errorf("pprof cmdline with the key: %q, want the command line", got)
					}
				}
			}
		})
	}
}

// TestReadyzNamesFailedChecks: /readyz is open, so it names the failing
// check without the error text; the log has the detail.
func TestReadyzNamesFailedChecks(t *testing.T) {
	ns, err := natsbus.StartServer(context.Background(), natsbus.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "readyz-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	var logs syncBuffer
	n := taisentest.StartNode(t, taisentest.Options{NATSURL: ns.ClientURL(), Logs: &logs})
	status, body := get(t, n.AdminURL+"/readyz")
	if status != http.StatusOK || body != "ready\n" {
		t.Fatalf("before: %d %q", status, body)
	}
	ns.Shutdown()
	deadline := time.Now().Add(20 * time.Second)
	for status == http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		status, body = get(t, n.AdminURL+"/readyz")
	}
	if status != http.StatusServiceUnavailable || body != "not ready: bus\n" {
		t.Errorf("with NATS gone: %d %q, want 503 %q", status, body, "not ready: bus\n")
	}
	// The node's log is written asynchronously (logdam): the line
	// arrives shortly after the answer.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "not ready: bus ping failed"); {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks the bus failure:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDataDirLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	taisentest.StartNode(t, taisentest.Options{DataDir: dir})
	cfg := config.Defaults()
	cfg.DataDir, cfg.ClientAddr, cfg.AdminAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	_, err := app.New(context.Background(), cfg, app.Options{LogOutput: io.Discard, Banner: io.Discard})
	if err == nil {
		t.Fatal("a second node opened the same data dir")
	}
	msg := err.Error()
	if !errorsIs(err, app.ErrDataDirInUse) || !strings.Contains(msg, dir) || !strings.Contains(msg, "pid "+itoa(os.Getpid())) || !strings.HasPrefix(msg, "data dir: ") {
		t.Errorf("err %q, want the data dir role, %s and pid %d", msg, dir, os.Getpid())
	}
}

// TestFailedStartStopsEarlierRoles: when a later role fails, the roles
// started before it are stopped again: the data dir is unlocked and the
// embedded NATS has released its storage, so the same dir starts cleanly.
func TestFailedStartStopsEarlierRoles(t *testing.T) {
	busy := taisentest.StartNode(t, taisentest.Options{})
	dir := filepath.Join(t.TempDir(), "data")
	cfg := config.Defaults()
	cfg.DataDir, cfg.ClientAddr, cfg.AdminAddr = dir, strings.TrimPrefix(busy.ClientURL, "http://"), "127.0.0.1:0"
	_, err := app.New(context.Background(), cfg, app.Options{LogOutput: io.Discard, Banner: io.Discard})
	if err == nil || !strings.HasPrefix(err.Error(), "listeners: ") {
		t.Fatalf("err %v, want the listeners role to fail", err)
	}
	taisentest.StartNode(t, taisentest.Options{DataDir: dir})
}
