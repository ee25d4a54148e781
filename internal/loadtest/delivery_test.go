package loadtest

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
)

func TestParseIDs(t *testing.T) {
	d := newDelivery(Config{Scenario: ScenarioFanout, Sessions: 4, Topics: 2})
	id := d.timedID(classFanout, 7)
	c, k, ns, ok := d.parse(id)
	require.True(t, ok, id)
	assert.Equal(t, byte(classFanout), c)
	assert.Equal(t, 7, k)
	assert.Positive(t, ns)
	assert.Equal(t, ns, d.firstPub.Load())

	for _, tt := range []struct {
		id    string
		ok    bool
		c     byte
		k     int
		pubNs int64
	}{
		{id: d.prefix + "s12", ok: true, c: classStored, k: 12},
		{id: d.prefix + "n3.1500", ok: true, c: classNotify, k: 3, pubNs: 1500},
		{id: d.prefix, ok: false},
		{id: d.prefix + "f", ok: false},
		{id: d.prefix + "f-1", ok: false},
		{id: d.prefix + "f1.x", ok: false},
		{id: "lt-00000000-f1.5", ok: false}, // another run
		{id: "", ok: false},
	} {
		c, k, ns, ok := d.parse(tt.id)
		assert.Equal(t, tt.ok, ok, tt.id)
		if tt.ok {
			assert.Equal(t, []any{tt.c, tt.k, tt.pubNs}, []any{c, k, ns}, tt.id)
		}
	}
}

// TestDeliveryBookkeeping: what each session receives is counted once,
// twice is a duplicate, an item for another topic is an error, and what
// never came is lost.
func TestDeliveryBookkeeping(t *testing.T) {
	r := &runner{cfg: Config{Scenario: ScenarioFanout}, log: slog.New(slog.DiscardHandler), errs: map[string]int{}, samples: map[string]string{}}
	d := newDelivery(Config{Scenario: ScenarioFanout, Sessions: 4, Topics: 2, Messages: 10})
	r.dl = d
	rcs := make([]*receiver, 4)
	for i := range rcs {
		rcs[i] = &receiver{idx: i, group: d.groupOf(i)}
		d.rcs = append(d.rcs, rcs[i])
	}
	d.countMembers()
	assert.Equal(t, []int64{2, 2}, d.members)
	note := func(id string) []byte {
		b, err := proto.Marshal(&apiv1.Notification{Id: id})
		require.NoError(t, err)
		return b
	}
	d.issued.Store(3)
	item0, item1, item2 := d.timedID(classFanout, 0), d.timedID(classFanout, 1), d.timedID(classFanout, 2)
	d.published(0)
	d.published(1)
	d.published(0)
	assert.Equal(t, int64(6), d.expected.Load())

	d.handle(r, rcs[0], note(item0))
	d.handle(r, rcs[0], note(item2))
	d.handle(r, rcs[0], note(item0)) // again
	d.handle(r, rcs[1], note(item1))
	d.handle(r, rcs[2], note(item0))
	d.handle(r, rcs[2], note(item1))                    // topic 1's item at a topic 0 session
	d.handle(r, rcs[2], note(d.prefix+"f9.5"))          // never published
	d.handle(r, rcs[3], note("lt-00000000-f1.5"))       // another run's
	d.handle(r, rcs[3], []byte{0xff, 0xff, 0xff, 0xff}) // not a notification
	d.handle(r, rcs[3], note(d.prefix+"p1"))            // a probe of its topic
	d.handle(r, rcs[3], note(d.prefix+"p1"))

	assert.Equal(t, int64(4), d.delivered.Load())
	assert.Equal(t, int64(1), d.dups.Load())
	assert.Equal(t, int64(1), d.ready.Load())
	assert.Equal(t, map[string]int{"deliver_unexpected": 2, "deliver_undecodable": 1}, r.errs)

	var rep Report
	d.fill(&rep, d.cfg)
	assert.Equal(t, int64(3), *rep.Published)
	assert.Equal(t, int64(6), *rep.Expected)
	assert.Equal(t, int64(4), *rep.Deliveries)
	assert.Equal(t, int64(2), *rep.Lost, "session 2 missed item 2, session 3 item 1")
	assert.Equal(t, int64(1), *rep.Duplicates)
	assert.Positive(t, rep.LatencyMS.Max)
	assert.Nil(t, rep.Delivered)
	assert.Nil(t, rep.AllDeliveredMS)
}

func TestBitset(t *testing.T) {
	var b bitset
	assert.False(t, b.testAndSet(0))
	assert.True(t, b.testAndSet(0))
	assert.False(t, b.testAndSet(1000))
	assert.True(t, b.testAndSet(1000))
	assert.False(t, b.testAndSet(999))
	assert.Len(t, b, 16)
}

// TestNotificationID: the id read without decoding is the one
// proto.Unmarshal finds, whatever the other fields; broken input is an
// error.
func TestNotificationID(t *testing.T) {
	full := &apiv1.Notification{Id: "lt-1-f3.123", Subject: "s", Content: []byte{1, 2, 3}, ContentType: "x", Sender: "me",
		CreatedAtMs: 1795314394113, ExpiresAtMs: -1, Topic: "t", Mode: apiv1.NotifyMode_NOTIFY_MODE_STORED, Retained: true}
	for _, n := range []*apiv1.Notification{full, {Id: "only"}, {Subject: "no id"}, {}} {
		b, err := proto.Marshal(n)
		require.NoError(t, err)
		id, err := notificationID(b)
		require.NoError(t, err)
		assert.Equal(t, n.GetId(), id)
	}
	b, _ := proto.Marshal(full)
	for _, cut := range []int{1, 3, len(b) - 1} {
		_, err := notificationID(b[:cut])
		assert.Error(t, err, "cut at %d", cut)
	}
}
