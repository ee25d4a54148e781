// Package wire encodes and decodes the frames of the socket protocol
// (taisen.realtime.v1) in its two formats: binary protobuf (the default) and
// protojson text frames for debugging. Both the gateway and the Go client
// use it, so the two ends can never disagree about framing rules.
package wire

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// Format is the encoding of frames on one socket.
type Format uint8

// The frame formats.
const (
	// Binary frames carry protobuf (WebSocket opcode binary).
	Binary Format = iota
	// JSON frames carry protojson (WebSocket opcode text).
	JSON
)

// Subprotocol names a client may offer in Sec-WebSocket-Protocol.
const (
	SubprotocolProto = "taisen.proto"
	SubprotocolJSON  = "taisen.json"
)

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "proto"
}

// Subprotocol returns the subprotocol name of f.
func (f Format) Subprotocol() string {
	if f == JSON {
		return SubprotocolJSON
	}
	return SubprotocolProto
}

// ErrBadFormat means a format name is unknown.
var ErrBadFormat = errors.New("wire: unknown format")

// ParseFormat parses the ?format= query value ("", "proto", "protobuf",
// "binary" or "json").
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "proto", "protobuf", "binary":
		return Binary, nil
	case "json":
		return JSON, nil
	}
	return Binary, fmt.Errorf("%w %q (want proto or json)", ErrBadFormat, s)
}

// FormatFromRequest picks the format of a connecting socket from its query
// (?format=) and offered subprotocols; the query wins. It also returns the
// subprotocol to echo back ("" when the client offered none of ours).
func FormatFromRequest(query url.Values, offered []string) (Format, string, error) {
	var sub string
	f := Binary
	for _, p := range offered {
		switch strings.TrimSpace(p) {
		case SubprotocolJSON:
			f, sub = JSON, SubprotocolJSON
		case SubprotocolProto:
			f, sub = Binary, SubprotocolProto
		default:
			continue
		}
		break
	}
	if q := query.Get("format"); q != "" {
		qf, err := ParseFormat(q)
		if err != nil {
			return Binary, "", err
		}
		if sub != "" && qf != f {
			// Only an offered subprotocol may be echoed (RFC 6455), and
			// echoing none would fail the handshake in browsers.
			return Binary, "", fmt.Errorf("%w: ?format=%s contradicts the offered subprotocol %s", ErrBadFormat, q, sub)
		}
		f = qf
	}
	return f, sub, nil
}

var (
	jsonMarshal   = protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}
	jsonUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
	binMarshal    = proto.MarshalOptions{}
	binUnmarshal  = proto.UnmarshalOptions{DiscardUnknown: false}
)

// ErrDecode wraps every decoding failure.
var ErrDecode = errors.New("wire: cannot decode frame")

// Marshal encodes a frame in format f, appending to buf (which may be nil).
func Marshal(f Format, buf []byte, m proto.Message) ([]byte, error) {
	if f == JSON {
		b, err := jsonMarshal.MarshalAppend(buf, m)
		if err != nil {
			return nil, fmt.Errorf("wire: encode json: %w", err)
		}
		return b, nil
	}
	b, err := binMarshal.MarshalAppend(buf, m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode proto: %w", err)
	}
	return b, nil
}

// Unmarshal decodes a frame in format f into m (which it resets).
func Unmarshal(f Format, data []byte, m proto.Message) error {
	var err error
	if f == JSON {
		err = jsonUnmarshal.Unmarshal(data, m)
	} else {
		err = binUnmarshal.Unmarshal(data, m)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return nil
}

// DecodeClientFrame decodes and checks a client frame: the body must be one
// the protocol knows. Unknown bodies (from a newer client) are an error the
// gateway answers with BAD_REQUEST.
func DecodeClientFrame(f Format, data []byte) (*realtimev1.ClientFrame, error) {
	fr := &realtimev1.ClientFrame{}
	if err := Unmarshal(f, data, fr); err != nil {
		return nil, err
	}
	if fr.GetBody() == nil {
		return fr, fmt.Errorf("%w: frame has no body", ErrDecode)
	}
	return fr, nil
}

// DecodeServerFrame decodes a server frame (used by clients).
func DecodeServerFrame(f Format, data []byte) (*realtimev1.ServerFrame, error) {
	fr := &realtimev1.ServerFrame{}
	if err := Unmarshal(f, data, fr); err != nil {
		return nil, err
	}
	return fr, nil
}

// CloseCode is the WebSocket close status for a close reason: 4000+reason.
func CloseCode(r realtimev1.CloseReason) uint16 { return 4000 + uint16(r) }

// ReasonFromCloseCode inverts CloseCode; ok is false for statuses outside
// taisen's range.
func ReasonFromCloseCode(code uint16) (realtimev1.CloseReason, bool) {
	if code < 4000 || code > 4999 {
		return realtimev1.CloseReason_CLOSE_REASON_UNSPECIFIED, false
	}
	return realtimev1.CloseReason(code - 4000), true
}

// ReasonName is the short lower-case name of a close reason ("replaced").
func ReasonName(r realtimev1.CloseReason) string {
	name, ok := realtimev1.CloseReason_name[int32(r)]
	if !ok {
		return fmt.Sprintf("reason_%d", int32(r))
	}
	return strings.ToLower(strings.TrimPrefix(name, "CLOSE_REASON_"))
}
