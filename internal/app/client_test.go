package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

// TestSlowBodyIsCutOff: a client that trickles a request body is cut off
// after --http-timeout instead of holding a server goroutine.
func TestSlowBodyIsCutOff(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.HTTPTimeout = time.Second }})
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.ClientURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /taisen.api.v1.AuthService/Authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn) // returns when the server closes
		closed <- err
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for sent := 1; ; sent++ {
		select {
		case <-closed:
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("cut off after %v, want about the 1s timeout", took)
			}
			return
		case <-tick.C:
			if sent >= 100 {
				t.Fatal("the server kept reading a trickled body for 10 s (timeout 1 s)")
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return // cut off
			}
		}
	}
}

// TestWebSocketOutlivesHTTPTimeouts: the client listener's read and write
// timeouts must not touch an upgraded WebSocket, on either engine.
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	for _, engine := range []string{"epoll", "goroutine"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
				c.HTTPTimeout = time.Second
				c.Gateway.Engine = engine
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := client.New(n.ClientURL)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			auth, err := cl.AuthenticateDevice(ctx, "device-ws-timeouts-"+engine, true)
			if err != nil {
				t.Fatal(err)
			}
			sock, err := cl.Dial(ctx, client.DialOptions{Session: auth.Session})
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			// Quiet for well past both timeouts, then both directions
			// still work.
			time.Sleep(2500 * time.Millisecond)
			out, err := sock.RPC(ctx, "taisen.echo", []byte("still here"))
			if err != nil || string(out) != "still here" {
				t.Fatalf("echo after 2.5 s: %q, %v", out, err)
			}
			if _, err := n.Push(ctx, auth.Session.UserId, "after-timeouts", []byte("p")); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-sock.Pushes():
				if p.Kind != "after-timeouts" {
					t.Errorf("push %v", p)
				}
			case <-ctx.Done():
				t.Fatal("no push after 2.5 s")
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.MaxBodyBytes = 2048 }})
	url := n.ClientURL + "/taisen.api.v1.AuthService/Authenticate"
	big := `{"device":{"id":"` + strings.Repeat("x", 3000) + `"}}`

	resp, err := http.Post(url, "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Taisen-Error-Code") != "bad_request" || !strings.Contains(string(body), "larger than 2048 bytes") {
		t.Errorf("declared large body: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	// A body of unknown length is cut off while being read.
	resp, err = http.Post(url, "application/json", io.MultiReader(strings.NewReader(big))) // no Content-Length: chunked
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("chunked large body: %d %s, want a 4xx", resp.StatusCode, body)
	}

	// A request within the limit works.
	resp, err = http.Post(url, "application/json", strings.NewReader(`{"device":{"id":"device-small-body"},"create":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("small body: %d", resp.StatusCode)
	}
}

// TestSmallRepliesAreNotCompressed: gzip costs more CPU than it saves on
// a reply of a few hundred bytes (12 % of a login storm's CPU).
func TestSmallRepliesAreNotCompressed(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	req, _ := http.NewRequest(http.MethodPost, n.ClientURL+"/taisen.api.v1.AuthService/Authenticate",
		strings.NewReader(`{"device":{"id":"device-gzip-0001"},"create":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(bufio.NewReader(resp.Body))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("status %d, Content-Encoding %q (%d bytes), want an uncompressed reply", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(b))
	}
}

func TestHeaderLimit(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, url := range []string{n.ClientURL + "/healthz", n.AdminURL + "/healthz"} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Padding", strings.Repeat("x", 40<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s with 40 KiB of headers: %d, want 431", url, resp.StatusCode)
		}
	}
}
