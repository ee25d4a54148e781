package client

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

func TestDeduper(t *testing.T) {
	type step struct {
		op          string // claim, release, acked
		key         string
		fresh, ackd bool // expected from claim
	}
	tests := []struct {
		name  string
		size  int
		steps []step
		len   int
	}{
		{"a key is fresh once", 4, []step{
			{op: "claim", key: "a", fresh: true},
			{op: "claim", key: "a"},
			{op: "claim", key: "b", fresh: true},
		}, 2},
		{"the least recently seen key is forgotten first", 2, []step{
			{op: "claim", key: "a", fresh: true},
			{op: "claim", key: "b", fresh: true},
			{op: "claim", key: "a"}, // a is now the most recent
			{op: "claim", key: "c", fresh: true},
			{op: "claim", key: "a"},
			{op: "claim", key: "b", fresh: true}, // b was forgotten
		}, 2},
		{"released keys are fresh again", 4, []step{
			{op: "claim", key: "a", fresh: true},
			{op: "release", key: "a"},
			{op: "claim", key: "a", fresh: true},
		}, 1},
		{"acked keys are remembered as acked", 4, []step{
			{op: "claim", key: "a", fresh: true},
			{op: "acked", key: "a"},
			{op: "claim", key: "a", ackd: true},
			{op: "release", key: "a"}, // an acked key is kept
			{op: "acked", key: "b"},   // acked before it was seen
			{op: "claim", key: "b", ackd: true},
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDeduper(tt.size)
			for i, s := range tt.steps {
				switch s.op {
				case "claim":
					fresh, acked := d.claim(s.key)
					assert.Equal(t, s.fresh, fresh, "step %d: fresh", i)
					assert.Equal(t, s.ackd, acked, "step %d: acked", i)
				case "release":
					d.release(s.key)
				case "acked":
					d.acked(s.key)
				}
			}
			assert.Equal(t, tt.len, d.Len())
		})
	}
	assert.Equal(t, DefaultDedupSize, NewDeduper(0).size)
	assert.NotEqual(t, dedupKey("news", "1"), dedupKey("", "1"), "topic items and user items may share ids")
}

func TestNotificationOptionsNormalize(t *testing.T) {
	c, err := New("http://127.0.0.1:1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	in := &NotificationOptions{AutoAck: true}
	o, err := DialOptions{Session: &apiv1.Session{Token: "t"}, Notifications: in}.normalize(c)
	require.NoError(t, err)
	require.NotNil(t, o.Notifications.Dedup, "a Deduper by default")
	assert.True(t, o.Notifications.AutoAck)
	assert.Nil(t, in.Dedup, "the caller's options are not modified")
	assert.Equal(t, o.PushBuffer, notesBuffer(o))
	o, err = DialOptions{Session: &apiv1.Session{Token: "t"}}.normalize(c)
	require.NoError(t, err)
	assert.Zero(t, notesBuffer(o))
}

func TestDecodePush(t *testing.T) {
	note := &apiv1.Notification{Id: "n1", Subject: "gift", Content: []byte{0, 1}, Mode: apiv1.NotifyMode_NOTIFY_MODE_STORED}
	bin, err := proto.Marshal(note)
	require.NoError(t, err)
	js, err := protojson.Marshal(note)
	require.NoError(t, err)
	pres, err := proto.Marshal(&apiv1.Presence{UserId: "u1", State: apiv1.PresenceState_PRESENCE_STATE_PLAYING})
	require.NoError(t, err)
	const noteType = "taisen.api.v1.Notification"
	tests := []struct {
		name    string
		format  Format
		push    *realtimev1.Push
		wantErr bool
	}{
		{"binary", FormatBinary, &realtimev1.Push{Kind: PushKindNotification, PayloadType: noteType, Payload: bin}, false},
		{"json", FormatJSON, &realtimev1.Push{Kind: PushKindNotification, PayloadType: noteType, Payload: js}, false},
		{"no payload type", FormatBinary, &realtimev1.Push{Kind: PushKindNotification, Payload: bin}, false},
		{"wrong kind", FormatBinary, &realtimev1.Push{Kind: "chat", PayloadType: noteType, Payload: bin}, true},
		{"wrong payload type", FormatBinary, &realtimev1.Push{Kind: PushKindNotification, PayloadType: "taisen.api.v1.Presence", Payload: pres}, true},
		{"json on a binary socket", FormatBinary, &realtimev1.Push{Kind: PushKindNotification, PayloadType: noteType, Payload: js}, true},
		{"binary on a json socket", FormatJSON, &realtimev1.Push{Kind: PushKindNotification, PayloadType: noteType, Payload: bin}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Socket{opts: DialOptions{Format: tt.format}}
			got, err := s.DecodeNotification(tt.push)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, proto.Equal(note, got), "got %v", got)
		})
	}
	s := &Socket{opts: DialOptions{Format: FormatBinary}}
	p, err := s.DecodePresence(&realtimev1.Push{Kind: PushKindPresence, PayloadType: "taisen.api.v1.Presence", Payload: pres})
	require.NoError(t, err)
	assert.Equal(t, "u1", p.GetUserId())
	assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_PLAYING, p.GetState())
	_, err = s.DecodePresence(&realtimev1.Push{Kind: PushKindNotification, Payload: bin})
	assert.Error(t, err)
}

// FuzzDecodeNotification: a payload from the network never panics the
// decoder, in either format, and what decodes re-encodes to an equal
// message.
func FuzzDecodeNotification(f *testing.F) {
	bin, _ := proto.Marshal(&apiv1.Notification{Id: "n1", Topic: "news", Retained: true})
	js, _ := protojson.Marshal(&apiv1.Notification{Id: "n1", Content: []byte("x")})
	f.Add(bin, false)
	f.Add(js, true)
	f.Add([]byte(`{"id":1}`), true)
	f.Fuzz(func(t *testing.T, payload []byte, json bool) {
		format := FormatBinary
		if json {
			format = FormatJSON
		}
		s := &Socket{opts: DialOptions{Format: format}}
		n, err := s.DecodeNotification(&realtimev1.Push{Kind: PushKindNotification, Payload: payload})
		if err != nil {
			return
		}
		out, err := s.marshal(n)
		if err != nil {
			t.Fatalf("re-encode %v: %v", n, err)
		}
		again := &apiv1.Notification{}
		if err := s.unmarshal(out, again); err != nil || !proto.Equal(n, again) {
			t.Fatalf("round trip %v -> %v (%v)", n, again, err)
		}
	})
}
