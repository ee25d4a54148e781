package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/wire"
	"github.com/taisen-dev/taisen/taisentest"
)

// The client listener upgrades plain WebSocket requests without net/http
// (gateway.Listener) and hands everything else to net/http. These tests
// speak raw HTTP/1.1 to it. A head with bare LF line ends is one net/http
// accepts but the fast path leaves to it, so the same request with LF
// ends shows what net/http answers: the two answers must be the same.

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// upgradeRequest is a WebSocket request head for target with extra
// header lines ("Name: value\r\n").
func upgradeRequest(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n" + strings.Join(extra, "") + "\r\n"
}

// viaNetHTTP rewrites a head with bare LF line ends.
func viaNetHTTP(head string) string { return strings.ReplaceAll(head, "\r\n", "\n") }

func rawDial(t *testing.T, n *taisentest.Node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.ClientURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// answer is a response as a client sees it, without its Date.
type answer struct {
	status string
	header http.Header
	body   string
}

func readAnswer(t *testing.T, br *bufio.Reader) answer {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("read body: %v", err)
	}
	resp.Header.Del("Date")
	return answer{resp.Status, resp.Header, string(body)}
}

// ask sends one request on a fresh connection and reads the answer.
func ask(t *testing.T, n *taisentest.Node, req string) answer {
	t.Helper()
	c := rawDial(t, n)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, bufio.NewReader(c))
}

func sameAnswer(t *testing.T, what string, fast, slow answer) {
	t.Helper()
	if fast.status != slow.status || fast.body != slow.body || !equalHeaders(fast.header, slow.header) {
		t.Errorf("%s: fast path answered\n%s %v %q\nnet/http answers\n%s %v %q", what, fast.status, fast.header, fast.body, slow.status, slow.header, slow.body)
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// TestListenerRefusalsAnswerAsBefore: a refused upgrade gets net/http's
// answer to the same request, CORS headers included: status, the error
// code header, Retry-After and the sentence.
func TestListenerRefusalsAnswerAsBefore(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.CORSOrigins = "https://game.example.com"
		c.Gateway.MaxUnauthPerIP = 1
		c.Gateway.MaxUnauthSockets = 1
	}})
	sess := login(t, n, "device-listener-refusals")
	origin := "Origin: https://game.example.com\r\n"
	tests := []struct {
		name, target string
		status       int
		code         string
		retryAfter   string
		body         string
	}{
		{"unknown format", "/ws?format=xml", 400, "bad_request", "", "format"},
		{"bad token", "/ws?token=not-a-token", 401, "unauthenticated", "", ""},
		{"resume without token", "/ws?resume=abc", 400, "bad_request", "", "resume needs token"},
		{"bad last_seq", "/ws?token=" + url.QueryEscape(sess.Token) + "&last_seq=-1", 400, "bad_request", "", "last_seq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := upgradeRequest(tt.target, origin)
			fast := ask(t, n, req)
			if fast.status != strings.TrimSpace(strconv.Itoa(tt.status)+" "+http.StatusText(tt.status)) || fast.header.Get("Taisen-Error-Code") != tt.code ||
				!strings.Contains(fast.body, tt.body) || fast.header.Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("got %s %v %q, want %d %s", fast.status, fast.header, fast.body, tt.status, tt.code)
			}
			sameAnswer(t, tt.name, fast, ask(t, n, viaNetHTTP(req)))
		})
	}

	t.Run("unauthenticated cap", func(t *testing.T) {
		held := rawDial(t, n) // the one unauthenticated socket allowed
		if _, err := io.WriteString(held, upgradeRequest("/ws")); err != nil {
			t.Fatal(err)
		}
		if a := readAnswer(t, bufio.NewReader(held)); !strings.HasPrefix(a.status, "101") {
			t.Fatalf("first socket: %s", a.status)
		}
		req := upgradeRequest("/ws", origin)
		fast := ask(t, n, req)
		if !strings.HasPrefix(fast.status, "429") || fast.header.Get("Retry-After") != "1" || fast.header.Get("Taisen-Error-Code") != "rate_limited" {
			t.Errorf("second socket: %s %v %q, want 429 with Retry-After", fast.status, fast.header, fast.body)
		}
		sameAnswer(t, "unauthenticated cap", fast, ask(t, n, viaNetHTTP(req)))
	})

	t.Run("draining", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Gateway().Drain(ctx, gateway.DrainOptions{}); err != nil {
			t.Fatal(err)
		}
		req := upgradeRequest("/ws?token="+url.QueryEscape(sess.Token), origin)
		fast := ask(t, n, req)
		if !strings.HasPrefix(fast.status, "503") || fast.header.Get("Retry-After") != "1" || fast.header.Get("Taisen-Error-Code") != "unavailable" {
			t.Errorf("draining: %s %v %q, want 503 with Retry-After", fast.status, fast.header, fast.body)
		}
		sameAnswer(t, "draining", fast, ask(t, n, viaNetHTTP(req)))
	})
}

// TestListenerHandshakeAsBefore: the 101 answer of the fast path is the
// one net/http's path writes, byte for byte, with and without a
// subprotocol; a GET /ws that is not an upgrade gets net/http's answer.
func TestListenerHandshakeAsBefore(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	head := func(req string) string {
		c := rawDial(t, n)
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read handshake: %v (so far %q)", err, b.String())
			}
			b.WriteString(line)
			if line == "\r\n" {
				return b.String()
			}
		}
	}
	for _, extra := range []string{"", "Sec-WebSocket-Protocol: taisen.json, taisen.proto\r\n", "Sec-WebSocket-Protocol: chat\r\n"} {
		req := upgradeRequest("/ws", extra)
		fast := head(req)
		if !strings.HasPrefix(fast, "HTTP/1.1 101 ") {
			t.Fatalf("%q: %q", extra, fast)
		}
		if slow := head(viaNetHTTP(req)); fast != slow {
			t.Errorf("%q: fast path wrote %q, net/http's path %q", extra, fast, slow)
		}
	}
	notUpgrade := "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"
	sameAnswer(t, "GET /ws without Upgrade", ask(t, n, notUpgrade), ask(t, n, viaNetHTTP(notUpgrade)))
	post := "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	if a := ask(t, n, post); !strings.HasPrefix(a.status, "405") {
		t.Errorf("POST /ws: %s, want 405 from the mux", a.status)
	}
}

// TestListenerServesHTTP: the HTTP API, /healthz and a CORS preflight are
// served through the listener, several requests on one keep-alive
// connection.
func TestListenerServesHTTP(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.CORSOrigins = "*" }})
	c := rawDial(t, n)
	br := bufio.NewReader(c)
	body := `{"device":{"id":"device-listener-http"},"create":true}`
	steps := []struct {
		req    string
		status int
		check  func(answer) bool
	}{
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, func(a answer) bool { return a.body == "ok\n" }},
		{"OPTIONS /taisen.api.v1.AuthService/Authenticate HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n", 204,
			func(a answer) bool { return a.header.Get("Access-Control-Allow-Origin") == "https://a.example" }},
		{"POST /taisen.api.v1.AuthService/Authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, 200,
			func(a answer) bool { return strings.Contains(a.body, `"token"`) }},
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, func(a answer) bool { return a.body == "ok\n" }},
	}
	for i, s := range steps {
		if _, err := io.WriteString(c, s.req); err != nil {
			t.Fatalf("request %d on the kept-alive connection: %v", i, err)
		}
		a := readAnswer(t, br)
		if !strings.HasPrefix(a.status, strconv.Itoa(s.status)+" ") || !s.check(a) {
			t.Errorf("request %d: %s %v %q", i, a.status, a.header, a.body)
		}
	}
}

// welcomeAfter reads the 101 answer on c and then a Welcome.
func welcomeAfter(t *testing.T, c net.Conn) {
	t.Helper()
	br := bufio.NewReader(c)
	if a := readAnswer(t, br); !strings.HasPrefix(a.status, "101") {
		t.Fatalf("handshake: %s %v %q", a.status, a.header, a.body)
	}
	tc := &tconn{t: t, c: c, r: br, format: wire.Binary}
	if fr := tc.mustRecv(); fr.GetWelcome() == nil {
		t.Fatalf("got %v, want a Welcome", fr)
	}
}

// TestListenerTrickledHead: a head arriving one byte at a time is
// upgraded once complete.
func TestListenerTrickledHead(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-listener-trickle")
	c := rawDial(t, n)
	req := upgradeRequest("/ws?token=" + url.QueryEscape(sess.Token))
	for i := range len(req) {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // separate segments
	}
	welcomeAfter(t, c)
}

// TestListenerPipelinedHello: a Hello sent in the same segment as the
// upgrade request is not lost.
func TestListenerPipelinedHello(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-listener-pipelined")
	b, err := protoMarshal(withCid(tokenHello(sess.Token, "", 0), 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, head := range []string{upgradeRequest("/ws"), viaNetHTTP(upgradeRequest("/ws"))} {
		c := rawDial(t, n)
		if _, err := c.Write(append([]byte(head), maskedClientFrame(ws.OpBinary, b)...)); err != nil {
			t.Fatal(err)
		}
		welcomeAfter(t, c)
	}
}

// TestListenerHeadTooLarge: a head over the limit gets net/http's 431.
func TestListenerHeadTooLarge(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := rawDial(t, n)
	req := upgradeRequest("/ws", "X-Padding: "+strings.Repeat("x", 40<<10)+"\r\n")
	go func() { _, _ = io.WriteString(c, req) }() // the server stops reading at its limit
	a := readAnswer(t, bufio.NewReader(c))
	if a.status != "431 Request Header Fields Too Large" || a.body != "431 Request Header Fields Too Large" {
		t.Errorf("got %s %q, want net/http's 431", a.status, a.body)
	}
}

// TestListenerClosesSilentClient: a client that connects and sends
// nothing, or only part of a head, is closed after the read-header
// timeout, without an answer (as net/http does).
func TestListenerClosesSilentClient(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.HTTPTimeout = time.Second }})
	for _, sent := range []string{"", "GET /ws HTTP/1.1\r\nHost: x\r\n"} {
		c := rawDial(t, n)
		if _, err := io.WriteString(c, sent); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := io.ReadAll(c) // until the server closes; the deadline is 10 s
		if err != nil || len(got) != 0 {
			t.Errorf("sent %q: read %q, %v; want a close without an answer", sent, got, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("sent %q: closed after %v, want about the 1 s timeout", sent, took)
		}
	}
}

// TestListenerStopClosesPendingHeads: stopping the node closes a
// connection whose head is still being read at once, not after the
// read-header timeout (10 s here), and leaves no goroutine behind
// (TestMain).
func TestListenerStopClosesPendingHeads(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := rawDial(t, n)
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	// The head is being read once a complete request on another
	// connection was answered after it.
	if a := ask(t, n, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(a.status, "200") {
		t.Fatal(a.status)
	}
	start := time.Now()
	n.Stop()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("still open %v after the node stopped", time.Since(start))
	}
}

// TestListenerJSONHello: a JSON socket negotiated by subprotocol logs in
// with a credential in its Hello.
func TestListenerJSONHello(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := rawDial(t, n)
	if _, err := io.WriteString(c, upgradeRequest("/ws?format=json", "Sec-WebSocket-Protocol: taisen.json\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if a := readAnswer(t, br); !strings.HasPrefix(a.status, "101") || a.header.Get("Sec-WebSocket-Protocol") != "taisen.json" {
		t.Fatalf("handshake: %s %v", a.status, a.header)
	}
	tc := &tconn{t: t, c: c, r: br, format: wire.JSON}
	tc.request(hello(deviceAuth("device-listener-json")))
	fr := tc.mustRecv()
	if fr.GetWelcome() == nil {
		t.Fatalf("got %v, want a Welcome", fr)
	}
}
