package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestListenerUpgradesWithoutNetHTTP: through the Listener a WebSocket
// login never reaches the http.Server's handler, while other requests
// do; a head net/http must read (bare LF line ends) still upgrades through
// the handler. Shutdown of the server stops the Listener.
func TestListenerUpgradesWithoutNetHTTP(t *testing.T) {
	g := startGateway(t, "listener-node", connectBus(t, startNATS(t), "listener-node"))
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := g.Listen(tcp, ListenerConfig{Path: "/ws", ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 32 << 10})
	var seen atomic.Int32 // requests that reached the handler
	mux := http.NewServeMux()
	mux.Handle("GET /ws", g)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		mux.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := tcp.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, br, _, err := ws.Dialer{}.Dial(ctx, "ws://"+addr+"/ws?token=alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var r io.Reader = c
	if br != nil {
		r = io.MultiReader(br, c)
	}
	w := &wsClient{t: t, c: c, r: r}
	if wel := w.welcome(5 * time.Second); wel == nil {
		t.Fatal("no welcome")
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the upgrade reached the http handler (%d requests)", n)
	}

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" || seen.Load() != 1 {
		t.Errorf("/healthz: %q, handler saw %d requests, want 1", body, seen.Load())
	}

	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(raw, "GET /ws?token=bob HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(raw, buf); err != nil || string(buf) != "HTTP/1.1 101" || seen.Load() != 2 {
		t.Errorf("LF head: %q, %v, handler saw %d requests, want 2", buf, err, seen.Load())
	}

	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	http.DefaultClient.CloseIdleConnections()
	if err := srv.Shutdown(sctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("serve returned %v", err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial after close: %v, want refused", err)
	}
}

// TestListenerCloseBeforeAccept: a Listener closed before anything served
// it stops at once.
func TestListenerCloseBeforeAccept(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := (&Gateway{}).Listen(tcp, ListenerConfig{})
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := ln.Accept(); c != nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after close: %v, %v", c, err)
	}
}
