package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

var (
	errFrameTooLarge = errors.New("frame too large")
	errProtocol      = errors.New("websocket protocol error")
)

// wsFrame is one parsed client frame. payload aliases the parse buffer and
// is already unmasked.
type wsFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// parseFrame parses one client-to-server frame from the front of b. It
// returns the frame and the number of bytes consumed, or n == 0 when b
// holds only part of a frame. The payload is unmasked in place. Frames
// whose payload exceeds max fail with errFrameTooLarge as soon as the
// header is seen, so an oversized frame is never buffered.
func parseFrame(b []byte, max int) (f wsFrame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 {
		return f, 0, fmt.Errorf("%w: reserved bits set (no extension was negotiated)", errProtocol)
	}
	f.fin = b0&0x80 != 0
	f.op = b0 & 0x0f
	switch f.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !f.fin {
			return f, 0, fmt.Errorf("%w: fragmented control frame", errProtocol)
		}
	default:
		return f, 0, fmt.Errorf("%w: unknown opcode %#x", errProtocol, f.op)
	}
	if b1&0x80 == 0 {
		return f, 0, fmt.Errorf("%w: client frame is not masked", errProtocol)
	}
	hdr := 2
	length := uint64(b1 & 0x7f)
	switch length {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		length = uint64(binary.BigEndian.Uint16(b[2:4]))
		hdr = 4
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		length = binary.BigEndian.Uint64(b[2:10])
		hdr = 10
	}
	if f.op >= opClose && length > 125 {
		return f, 0, fmt.Errorf("%w: control frame longer than 125 bytes", errProtocol)
	}
	if length > uint64(max) {
		return f, 0, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, length, max)
	}
	total := hdr + 4 + int(length)
	if len(b) < total {
		return f, 0, nil
	}
	var mask [4]byte
	copy(mask[:], b[hdr:hdr+4])
	p := b[hdr+4 : total]
	for i := range p {
		p[i] ^= mask[i&3]
	}
	f.payload = p
	return f, total, nil
}

// appendFrameHeader appends an unmasked server frame header for a final
// frame with opcode op and a payload of n bytes.
func appendFrameHeader(dst []byte, op byte, n int) []byte {
	b0 := 0x80 | op
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// frameHeaderLen is the header size appendFrameHeader writes for n bytes.
func frameHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// closePayload builds a close frame payload: status code and reason (cut
// to fit the 125-byte control frame limit, at a rune boundary: the reason
// must stay valid UTF-8).
func closePayload(code uint16, reason string) []byte {
	if len(reason) > 123 {
		n := 123
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, code)
	return append(p, reason...)
}
