package wire

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

func TestFormatFromRequest(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		offered []string
		want    Format
		wantSub string
		wantErr bool
	}{
		{"default", "", nil, Binary, "", false},
		{"query json", "format=json", nil, JSON, "", false},
		{"query proto aliases", "format=BINARY", nil, Binary, "", false},
		{"subprotocol json", "", []string{"taisen.json"}, JSON, "taisen.json", false},
		{"subprotocol proto", "", []string{"x", "taisen.proto"}, Binary, "taisen.proto", false},
		{"first offered of ours wins", "", []string{"taisen.proto", "taisen.json"}, Binary, "taisen.proto", false},
		{"first offered of ours wins json", "", []string{" taisen.json", "taisen.proto"}, JSON, "taisen.json", false},
		{"query wins over offer, no echo", "format=json", []string{"taisen.proto"}, JSON, "", false},
		{"query proto wins over json offer", "format=proto", []string{"taisen.json"}, Binary, "", false},
		{"query picks the matching offer", "format=json", []string{"taisen.proto", "taisen.json"}, JSON, "taisen.json", false},
		{"query and offer agree", "format=json", []string{"taisen.json"}, JSON, "taisen.json", false},
		{"query with unknown offer", "format=json", []string{"mqtt"}, JSON, "", false},
		{"bad query", "format=xml", nil, Binary, "", true},
		{"bad query with offer", "format=xml", []string{"taisen.json"}, Binary, "", true},
		{"unknown subprotocol", "", []string{"mqtt"}, Binary, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, sub, err := FormatFromRequest(q, tt.offered)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrBadFormat) {
					t.Errorf("err = %v, want ErrBadFormat", err)
				}
				return
			}
			if got != tt.want || sub != tt.wantSub {
				t.Errorf("got (%v, %q), want (%v, %q)", got, sub, tt.want, tt.wantSub)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	in := &realtimev1.ClientFrame{Cid: 7, Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "echo", Payload: []byte("hi")}}}
	for _, f := range []Format{Binary, JSON} {
		b, err := Marshal(f, nil, in)
		if err != nil {
			t.Fatalf("%v: marshal: %v", f, err)
		}
		out, err := DecodeClientFrame(f, b)
		if err != nil {
			t.Fatalf("%v: decode: %v", f, err)
		}
		if !proto.Equal(in, out) {
			t.Errorf("%v: got %v, want %v", f, out, in)
		}
	}
}

func TestDecodeClientFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		data []byte
	}{
		{"empty binary", Binary, nil},
		{"garbage binary", Binary, []byte{0xff, 0xff, 0xff}},
		{"empty json object", JSON, []byte(`{}`)},
		{"not json", JSON, []byte(`{"cid":`)},
		{"wrong type", JSON, []byte(`{"cid":"x","ping":{}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeClientFrame(tt.f, tt.data)
			if !errors.Is(err, ErrDecode) {
				t.Errorf("err = %v, want ErrDecode", err)
			}
		})
	}
}

func TestCloseCode(t *testing.T) {
	for v := range realtimev1.CloseReason_name {
		r := realtimev1.CloseReason(v)
		code := CloseCode(r)
		want := 4000 + uint16(v)
		if r == realtimev1.CloseReason_CLOSE_REASON_INVALID_PAYLOAD {
			want = 1007 // RFC 6455: inconsistent data, such as bad UTF-8
		}
		if code != want {
			t.Errorf("CloseCode(%v) = %d, want %d", r, code, want)
		}
		got, ok := ReasonFromCloseCode(code)
		if !ok || got != r {
			t.Errorf("ReasonFromCloseCode(CloseCode(%v)) = %v, %v", r, got, ok)
		}
	}
	for _, code := range []uint16{1000, 1001, 1006, 3999, 5000} {
		if r, ok := ReasonFromCloseCode(code); ok {
			t.Errorf("%d maps to %v, want no taisen reason", code, r)
		}
	}
	if got := ReasonName(realtimev1.CloseReason_CLOSE_REASON_REPLACED); got != "replaced" {
		t.Errorf("ReasonName = %q", got)
	}
}

func TestReconnect(t *testing.T) {
	stay := map[realtimev1.CloseReason]bool{
		realtimev1.CloseReason_CLOSE_REASON_NORMAL:           true,
		realtimev1.CloseReason_CLOSE_REASON_REPLACED:         true,
		realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION: true,
		realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED:      true,
		realtimev1.CloseReason_CLOSE_REASON_KICKED:           true,
	}
	for v := range realtimev1.CloseReason_name {
		r := realtimev1.CloseReason(v)
		if got := Reconnect(r); got == stay[r] {
			t.Errorf("Reconnect(%v) = %v", r, got)
		}
	}
	if !Reconnect(realtimev1.CloseReason(999)) {
		t.Error("an unknown reason should reconnect")
	}
}

func FuzzDecodeClientFrame(f *testing.F) {
	seed, _ := Marshal(Binary, nil, &realtimev1.ClientFrame{Cid: 1, Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{ClientTimeMs: 5}}})
	f.Add(seed, false)
	f.Add([]byte(`{"cid":1,"hello":{"token":"abc","resumeSessionId":"s","lastSeq":"3"}}`), true)
	f.Add([]byte{0x0a, 0x80}, false)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		format := Binary
		if json {
			format = JSON
		}
		fr, err := DecodeClientFrame(format, data)
		if err != nil {
			return
		}
		// A decoded frame must re-encode.
		if _, err := Marshal(format, nil, fr); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func FuzzDecodeServerFrame(f *testing.F) {
	seed, _ := Marshal(Binary, nil, &realtimev1.ServerFrame{Cid: 3, Body: &realtimev1.ServerFrame_Push{Push: &realtimev1.Push{Seq: 9, Kind: "k", Payload: []byte("p")}}})
	f.Add(seed, false)
	f.Add([]byte(`{"welcome":{"sessionId":"s","resumed":true,"replayed":2}}`), true)
	f.Add([]byte(`{"disconnect":{"reason":"CLOSE_REASON_DRAINING","reconnect":true}}`), true)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		format := Binary
		if json {
			format = JSON
		}
		fr, err := DecodeServerFrame(format, data)
		if err != nil {
			return
		}
		if _, err := Marshal(format, nil, fr); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// FuzzFormatFromRequest checks, for any query and offer, that the echoed
// subprotocol is one the client offered and names the chosen format.
func FuzzFormatFromRequest(f *testing.F) {
	f.Add("format=json", "taisen.proto, taisen.json")
	f.Add("", "taisen.json")
	f.Add("format=xml", "")
	f.Fuzz(func(t *testing.T, query, offer string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		offered := strings.Split(offer, ",")
		format, sub, err := FormatFromRequest(q, offered)
		if err != nil {
			if !errors.Is(err, ErrBadFormat) {
				t.Fatalf("err = %v, want ErrBadFormat", err)
			}
			return
		}
		if sub == "" {
			return
		}
		if sub != format.Subprotocol() {
			t.Fatalf("echoed %q for format %v", sub, format)
		}
		for _, p := range offered {
			if strings.TrimSpace(p) == sub {
				return
			}
		}
		t.Fatalf("echoed %q, which %q does not offer", sub, offer)
	})
}
