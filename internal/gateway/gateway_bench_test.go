package gateway

import (
	"bytes"
	"encoding/binary"
	"testing"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/wire"
)

func benchFrame(payload []byte) []byte {
	out := []byte{0x82}
	n := len(payload)
	switch {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, 1, 2, 3, 4)
	for i, c := range payload {
		out = append(out, c^[]byte{1, 2, 3, 4}[i&3])
	}
	return out
}

// BenchmarkParseFrame measures framing plus decoding of one client request.
func BenchmarkParseFrame(b *testing.B) {
	req, _ := wire.Marshal(wire.Binary, nil, &realtimev1.ClientFrame{Cid: 7, Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "taisen.echo", Payload: []byte("hello")}}})
	frame := benchFrame(req)
	buf := make([]byte, len(frame))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		copy(buf, frame)
		f, n, err := parseFrame(buf, 1<<16)
		if err != nil || n != len(frame) {
			b.Fatal(err)
		}
		if _, err := wire.DecodeClientFrame(wire.Binary, f.payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodePush measures turning a push into a ready-to-write frame,
// sized by payload.
func BenchmarkEncodePush(b *testing.B) {
	for _, size := range []int{16, 1024, 16384} {
		b.Run(byteSize(size), func(b *testing.B) {
			c := &conn{format: wire.Binary}
			p := &realtimev1.Push{Seq: 42, Kind: "notice", Payload: bytes.Repeat([]byte("x"), size), SentAtMs: 1}
			fr := &realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Push{Push: p}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.encode(fr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPushRing measures keeping pushes for resume.
func BenchmarkPushRing(b *testing.B) {
	var r pushRing
	payload := make([]byte, 64)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		r.add(&realtimev1.Push{Seq: seq, Kind: "k", Payload: payload}, 256, 256<<10)
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1024:
		return string(rune('0'+n/1024/10%10)) + string(rune('0'+n/1024%10)) + "KiB"
	default:
		return string(rune('0'+n/10%10)) + string(rune('0'+n%10)) + "B"
	}
}
