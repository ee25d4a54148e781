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
// (?format=) and offered subprotocols (Sec-WebSocket-Protocol). The query
// wins; without it, the first of our subprotocols the client offered picks
// the format. It also returns the subprotocol to echo back: the one naming
// the chosen format when the client offered it, else "" (RFC 6455 lets a
// server echo only an offered subprotocol). The only error is an unknown
// ?format= value (ErrBadFormat).
func FormatFromRequest(query url.Values, offered []string) (Format, string, error) {
	f, chosen := Binary, false
	if q := query.Get("format"); q != "" {
		qf, err := ParseFormat(q)
		if err != nil {
			return Binary, "", err
		}
		f, chosen = qf, true
	}
	for _, p := range offered {
		var pf Format
		switch strings.TrimSpace(p) {
		case SubprotocolJSON:
			pf = JSON
		case SubprotocolProto:
			pf = Binary
		default:
			continue
		}
		if !chosen {
			f, chosen = pf, true
		}
		if pf == f {
			return f, f.Subprotocol(), nil
		}
	}
	return f, "", nil
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

// standardCloseCodes are the close reasons whose WebSocket close status is
// a standard one (RFC 6455 section 7.4.1) instead of 4000 + the reason.
var standardCloseCodes = map[realtimev1.CloseReason]uint16{
	realtimev1.CloseReason_CLOSE_REASON_INVALID_PAYLOAD: 1007,
}

// CloseCode is the WebSocket close status for a close reason: 4000 + the
// reason's number, or the standard status of the few reasons RFC 6455
// names (INVALID_PAYLOAD: 1007).
func CloseCode(r realtimev1.CloseReason) uint16 {
	if c, ok := standardCloseCodes[r]; ok {
		return c
	}
	return 4000 + uint16(r)
}

// ReasonFromCloseCode inverts CloseCode; ok is false for statuses that name
// no taisen reason (outside 4000-4999 and not in the standard table).
func ReasonFromCloseCode(code uint16) (realtimev1.CloseReason, bool) {
	for r, c := range standardCloseCodes {
		if c == code {
			return r, true
		}
	}
	if code < 4000 || code > 4999 {
		return realtimev1.CloseReason_CLOSE_REASON_UNSPECIFIED, false
	}
	return realtimev1.CloseReason(code - 4000), true
}

// Reconnect is the server's advice for a socket closed with reason r, as
// sent in Disconnect.reconnect: false when reconnecting would only repeat
// the close or undo the player's intent (NORMAL, REPLACED,
// POLICY_VIOLATION, AUTH_FAILED, KICKED), true otherwise, including for
// reasons this build does not know.
func Reconnect(r realtimev1.CloseReason) bool {
	switch r {
	case realtimev1.CloseReason_CLOSE_REASON_NORMAL,
		realtimev1.CloseReason_CLOSE_REASON_REPLACED,
		realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION,
		realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED,
		realtimev1.CloseReason_CLOSE_REASON_KICKED:
		return false
	}
	return true
}

// ReasonName is the short lower-case name of a close reason ("replaced").
func ReasonName(r realtimev1.CloseReason) string {
	name, ok := realtimev1.CloseReason_name[int32(r)]
	if !ok {
		return fmt.Sprintf("reason_%d", int32(r))
	}
	return strings.ToLower(strings.TrimPrefix(name, "CLOSE_REASON_"))
}
