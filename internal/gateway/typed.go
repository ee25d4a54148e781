package gateway

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// RegisterTyped adds a socket operation whose request and reply are
// protobuf messages. Binary sockets send and receive their protobuf
// encoding in RpcRequest.payload and RpcResponse.payload, JSON sockets
// their protojson encoding; a payload that does not decode gets
// BAD_REQUEST. Built-in operations (notifications, presence, meta) are
// typed, so every SDK and a JSON debug client can use them.
func RegisterTyped[Req, Resp proto.Message](r *Registry, name string, fn func(ctx context.Context, call Call, req Req) (Resp, error)) error {
	var zero Req
	newReq := func() Req { return zero.ProtoReflect().New().Interface().(Req) }
	return r.Register(name, func(ctx context.Context, call Call) ([]byte, error) {
		req := newReq()
		var err error
		if call.JSON {
			err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(call.Payload, req)
		} else {
			err = proto.Unmarshal(call.Payload, req)
		}
		if err != nil {
			return nil, apierr.BadRequest("%s: payload is not a %s: %v", name, req.ProtoReflect().Descriptor().FullName(), err)
		}
		resp, err := fn(ctx, call, req)
		if err != nil {
			return nil, err
		}
		if call.JSON {
			return protojson.Marshal(resp)
		}
		return proto.Marshal(resp)
	})
}

// TypeName is the payload type to put in Message.PayloadType for m.
func TypeName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

// transcode turns a typed protobuf payload into the encoding of format f:
// unchanged for binary sockets, protojson for JSON sockets.
func transcode(f wire.Format, payloadType string, payload []byte) ([]byte, error) {
	if f != wire.JSON || payloadType == "" {
		return payload, nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(payloadType))
	if err != nil {
		return nil, fmt.Errorf("gateway: payload type %s: %w", payloadType, err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("gateway: payload of type %s: %w", payloadType, err)
	}
	return protojson.Marshal(m)
}

// encodePush encodes a push frame for c, transcoding a typed payload for
// JSON sockets.
func (c *conn) encodePush(p *realtimev1.Push) ([]byte, error) {
	if c.format == wire.JSON && p.PayloadType != "" {
		payload, err := transcode(c.format, p.PayloadType, p.Payload)
		if err != nil {
			return nil, err
		}
		q := proto.Clone(p).(*realtimev1.Push)
		q.Payload = payload
		p = q
	}
	return c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Push{Push: p}})
}

// encodeEphemeral encodes an ephemeral frame for c, likewise.
func (c *conn) encodeEphemeral(e *realtimev1.Ephemeral) ([]byte, error) {
	if c.format == wire.JSON && e.PayloadType != "" {
		payload, err := transcode(c.format, e.PayloadType, e.Payload)
		if err != nil {
			return nil, err
		}
		e = &realtimev1.Ephemeral{Kind: e.Kind, Payload: payload, SentAtMs: e.SentAtMs, PayloadType: e.PayloadType}
	}
	return c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Ephemeral{Ephemeral: e}})
}
