package gateway

import (
	"bytes"
)

// upgradeHead is what the listener's fast path needs from a request head
// that asks for a WebSocket on its endpoint.
type upgradeHead struct {
	// rawQuery is the request target after '?' ("" without one).
	rawQuery string
	// protocols are the values of the Sec-WebSocket-Protocol headers.
	protocols []string
}

// headEnd scans buf for the end of a request head the way net/http reads
// one: lines end with "\n" (optionally "\r\n") and the head ends with the
// first empty line. from is where the line being scanned starts (0 at
// first); headEnd returns the index just past the empty line, or -1 and
// where to resume once more bytes arrived.
func headEnd(buf []byte, from int) (end, next int) {
	for {
		i := bytes.IndexByte(buf[from:], '\n')
		if i < 0 {
			return -1, from
		}
		line := buf[from : from+i]
		from += i + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return from, from
		}
	}
}

// parseUpgradeHead reads a complete request head (through its empty
// line) and reports whether it is a plain WebSocket upgrade of path: GET
// over HTTP/1.1, the target exactly path with an optional query, one Host
// that net/http accepts, exactly one each of Upgrade: websocket,
// Connection (with the upgrade token), a 24-byte Sec-WebSocket-Key and
// Sec-WebSocket-Version: 13, and no body.
//
// It is deliberately stricter than net/http: every line must end with
// CRLF, header names must be tokens, values free of control bytes, and
// anything unusual (a body, Expect, a folded line, a repeated handshake
// header, an unusual character in the target or the host) is refused.
// A refused head is served by net/http, unchanged, so strictness costs
// speed, never behaviour. The input is untrusted (see FuzzParseUpgradeHead).
func parseUpgradeHead(head []byte, path string) (upgradeHead, bool) {
	var h upgradeHead
	line, rest, ok := cutCRLF(head)
	if !ok {
		return h, false
	}
	method, line, _ := bytes.Cut(line, []byte{' '})
	target, proto, ok := bytes.Cut(line, []byte{' '})
	if !ok || string(method) != "GET" || string(proto) != "HTTP/1.1" {
		return h, false
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return h, false
		}
	}
	p, q, hasQuery := bytes.Cut(target, []byte{'?'})
	if string(p) != path {
		return h, false
	}
	if hasQuery {
		h.rawQuery = string(q)
	}
	const (
		seenHost = 1 << iota
		seenUpgrade
		seenConnection
		seenKey
		seenVersion
		seenAll = seenHost | seenUpgrade | seenConnection | seenKey | seenVersion
	)
	seen := 0
	for {
		if line, rest, ok = cutCRLF(rest); !ok {
			return h, false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return h, false
		}
		name := line[:colon]
		value := bytes.Trim(line[colon+1:], " \t")
		for _, b := range value {
			if (b < ' ' && b != '\t') || b == 0x7f {
				return h, false
			}
		}
		bit := 0
		switch {
		case asciiEqualFold(name, "Host"):
			if !isSimpleHost(value) {
				return h, false
			}
			bit = seenHost
		case asciiEqualFold(name, "Upgrade"):
			if !asciiEqualFold(value, "websocket") {
				return h, false
			}
			bit = seenUpgrade
		case asciiEqualFold(name, "Connection"):
			if !hasToken(value, "upgrade") {
				return h, false
			}
			bit = seenConnection
		case asciiEqualFold(name, "Sec-WebSocket-Key"):
			if len(value) != 24 {
				return h, false
			}
			bit = seenKey
		case asciiEqualFold(name, "Sec-WebSocket-Version"):
			if string(value) != "13" {
				return h, false
			}
			bit = seenVersion
		case asciiEqualFold(name, "Sec-WebSocket-Protocol"):
			h.protocols = append(h.protocols, string(value))
		case asciiEqualFold(name, "Content-Length"), asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"):
			return h, false
		}
		if seen&bit != 0 {
			return h, false
		}
		seen |= bit
	}
	return h, seen == seenAll && len(rest) == 0
}

// cutCRLF splits b after its first line, which must end with CRLF.
func cutCRLF(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// isToken reports whether b is an RFC 9110 token (a header name).
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

// isSimpleHost accepts a host[:port] of letters, digits and "-._:[]",
// which net/http always accepts; anything else is left to net/http.
func isSimpleHost(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return len(b) > 0
}

// hasToken reports whether the comma-separated list v holds token
// (ASCII case-insensitively).
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte{','})
		if asciiEqualFold(bytes.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
