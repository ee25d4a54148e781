package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
)

const goodHead = "GET /ws?token=abc&format=json HTTP/1.1\r\nHost: 127.0.0.1:7350\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: taisen.json\r\nSec-WebSocket-Protocol: taisen.proto\r\n" +
	"User-Agent: game/1.0\r\n\r\n"

func TestParseUpgradeHead(t *testing.T) {
	h, ok := parseUpgradeHead([]byte(goodHead), "/ws")
	if !ok || h.rawQuery != "token=abc&format=json" || !slices.Equal(h.protocols, []string{"taisen.json", "taisen.proto"}) {
		t.Fatalf("good head: %+v %v", h, ok)
	}
	// Each of these is left to net/http.
	refused := []struct{ name, from, to string }{
		{"other path", "GET /ws?", "GET /wss?"},
		{"path prefix", "GET /ws?", "GET /ws/x?"},
		{"POST", "GET /ws", "POST /ws"},
		{"HEAD", "GET /ws", "HEAD /ws"},
		{"HTTP/1.0", "HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"},
		{"absolute target", "GET /ws?", "GET http://x/ws?"},
		{"fragment", "format=json", "format=json#x"},
		{"bare LF", "Upgrade: websocket\r\n", "Upgrade: websocket\n"},
		{"no Host", "Host: 127.0.0.1:7350\r\n", ""},
		{"two Hosts", "Host: 127.0.0.1:7350\r\n", "Host: a\r\nHost: b\r\n"},
		{"odd Host", "Host: 127.0.0.1:7350", "Host: a/b"},
		{"no Upgrade", "Upgrade: websocket\r\n", ""},
		{"Upgrade h2c", "Upgrade: websocket", "Upgrade: h2c"},
		{"Connection without upgrade", "keep-alive, Upgrade", "keep-alive"},
		{"short key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Key: abc"},
		{"version 8", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"},
		{"two versions", "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n"},
		{"body", "User-Agent", "Content-Length: 0\r\nUser-Agent"},
		{"chunked", "User-Agent", "Transfer-Encoding: chunked\r\nUser-Agent"},
		{"expect", "User-Agent", "Expect: 100-continue\r\nUser-Agent"},
		{"folded line", "User-Agent: game/1.0\r\n", "User-Agent: game/1.0\r\n more\r\n"},
		{"space before colon", "User-Agent:", "User-Agent :"},
		{"control byte", "game/1.0", "game\x01/1.0"},
		{"bytes after the head", "\r\n\r\n", "\r\n\r\nGET"},
	}
	for _, tt := range refused {
		head := strings.Replace(goodHead, tt.from, tt.to, 1)
		if head == goodHead {
			t.Fatalf("%s: the case changes nothing", tt.name)
		}
		if _, ok := parseUpgradeHead([]byte(head), "/ws"); ok {
			t.Errorf("%s: accepted %q", tt.name, head)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest", 27},
		{"GET / HTTP/1.1\nHost: x\n\nrest", 24},
		{"\r\n", 2},
		{"GET / HTTP/1.1\r\nHost: x\r\n", -1},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r", -1},
	}
	for _, tt := range tests {
		// Fed whole and one byte at a time, it finds the same end.
		if end, _ := headEnd([]byte(tt.in), 0); end != tt.want {
			t.Errorf("%q: end %d, want %d", tt.in, end, tt.want)
		}
		end, from := -1, 0
		for i := 1; i <= len(tt.in) && end < 0; i++ {
			end, from = headEnd([]byte(tt.in[:i]), from)
		}
		if end != tt.want {
			t.Errorf("%q byte by byte: end %d, want %d", tt.in, end, tt.want)
		}
	}
}

// FuzzParseUpgradeHead feeds untrusted heads to the parser. It must not
// panic, and whatever it accepts net/http must read as the same request:
// a GET of /ws over HTTP/1.1 with a WebSocket upgrade, the same query and
// the same offered subprotocols, so the fast path never serves a request
// net/http would have served differently.
func FuzzParseUpgradeHead(f *testing.F) {
	f.Add([]byte(goodHead))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	f.Add([]byte("GET /ws?a=%zz;b HTTP/1.1\r\nhost: [::1]:1\r\nupgrade: WebSocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"))
	f.Add([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		end, _ := headEnd(head, 0)
		if end < 0 {
			return
		}
		head = head[:end]
		h, ok := parseUpgradeHead(head, "/ws")
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("accepted a head net/http refuses (%v): %q", err, head)
		}
		if r.Method != http.MethodGet || r.URL.Path != "/ws" || r.URL.RawQuery != h.rawQuery || r.ProtoMinor != 1 || r.Host == "" ||
			!strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("Sec-WebSocket-Version") != "13" ||
			len(r.Header.Get("Sec-WebSocket-Key")) != 24 || r.ContentLength != 0 || len(r.TransferEncoding) != 0 ||
			!slices.Equal(r.Header.Values("Sec-WebSocket-Protocol"), h.protocols) {
			t.Fatalf("net/http reads %q differently: %s %s %v %+v", head, r.Method, r.URL, r.Header, h)
		}
	})
}
