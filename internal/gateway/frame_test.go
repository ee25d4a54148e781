package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// maskedFrame builds a masked client frame like a browser would.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var out []byte
	n := len(payload)
	switch {
	case n < 126:
		out = append(out, b0, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

func TestParseFrame(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300)
	huge := bytes.Repeat([]byte("y"), 70000)
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantN   int
		wantOp  byte
		wantPay []byte
		wantErr error
	}{
		{"small binary", maskedFrame(true, opBinary, []byte("hello")), 1024, 11, opBinary, []byte("hello"), nil},
		{"16-bit length", maskedFrame(true, opText, big), 1024, 8 + 300, opText, big, nil},
		{"64-bit length", maskedFrame(true, opBinary, huge), 100000, 14 + 70000, opBinary, huge, nil},
		{"partial header", []byte{0x82}, 1024, 0, 0, nil, nil},
		{"partial payload", maskedFrame(true, opBinary, []byte("hello"))[:8], 1024, 0, 0, nil, nil},
		{"too large", maskedFrame(true, opBinary, big)[:4], 100, 0, 0, nil, errFrameTooLarge},
		{"unmasked", []byte{0x82, 0x01, 'a'}, 1024, 0, 0, nil, errProtocol},
		{"reserved bits", []byte{0xc2, 0x80, 0, 0, 0, 0}, 1024, 0, 0, nil, errProtocol},
		{"bad opcode", []byte{0x83, 0x80, 0, 0, 0, 0}, 1024, 0, 0, nil, errProtocol},
		{"fragmented ping", maskedFrame(false, opPing, nil), 1024, 0, 0, nil, errProtocol},
		{"long ping", maskedFrame(true, opPing, big), 1024, 0, 0, nil, errProtocol},
		{"ping", maskedFrame(true, opPing, []byte("p")), 1024, 7, opPing, []byte("p"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, n, err := parseFrame(append([]byte(nil), tt.in...), tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != tt.wantN {
				t.Fatalf("n = %d, want %d", n, tt.wantN)
			}
			if n == 0 {
				return
			}
			if f.op != tt.wantOp || !bytes.Equal(f.payload, tt.wantPay) {
				t.Errorf("got op %#x payload %q, want %#x %q", f.op, f.payload[:min(len(f.payload), 16)], tt.wantOp, tt.wantPay[:min(len(tt.wantPay), 16)])
			}
		})
	}
}

func TestAppendFrameHeader(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		h := appendFrameHeader(nil, opBinary, n)
		if len(h) != frameHeaderLen(n) {
			t.Errorf("n=%d: header len %d, want %d", n, len(h), frameHeaderLen(n))
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(maskedFrame(true, opBinary, []byte("hello")), 64)
	f.Add(maskedFrame(false, opText, []byte("a")), 64)
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}, 1<<20)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		buf := append([]byte(nil), data...)
		for len(buf) > 0 {
			fr, n, err := parseFrame(buf, max)
			if err != nil || n == 0 {
				return
			}
			if n > len(buf) || len(fr.payload) > max {
				t.Fatalf("n=%d len=%d payload=%d max=%d", n, len(buf), len(fr.payload), max)
			}
			buf = buf[n:]
		}
	})
}

func TestClosePayloadKeepsUTF8(t *testing.T) {
	reason := strings.Repeat("é", 100) // 200 bytes, 2 per rune
	p := closePayload(4011, reason)
	if len(p) > 125 {
		t.Fatalf("payload %d bytes, want at most 125", len(p))
	}
	if !utf8.Valid(p[2:]) {
		t.Errorf("reason cut inside a rune: %q", p[2:])
	}
	if got := string(p[2:]); got != strings.Repeat("é", 61) {
		t.Errorf("reason = %q (%d bytes)", got, len(got))
	}
}
