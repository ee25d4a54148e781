package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/internal/bus"
)

// consume runs c.Consume(ctx, h) in a goroutine the test waits for.
func consume(t *testing.T, ctx context.Context, c bus.Consumer, h bus.StreamHandler) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Consume(ctx, h) }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			assert.NoError(t, err, "consume")
		case <-time.After(10 * time.Second):
			t.Error("consume did not return after its ctx ended")
		}
	})
}

// consumerState reads the server's view of a durable consumer.
func consumerState(t *testing.T, b *Bus, stream, durable string) (ackPending int, pending uint64) {
	t.Helper()
	c, err := b.js.Consumer(ctxTimeout(t, 5*time.Second), stream, durable)
	require.NoError(t, err)
	info, err := c.Info(ctxTimeout(t, 5*time.Second))
	require.NoError(t, err)
	return info.NumAckPending, info.NumPending
}

func TestStreamPublishDedup(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b := connect(t, s, "dedup")
	ctx := ctxTimeout(t, 20*time.Second)

	st, err := b.Stream(ctx, bus.StreamConfig{Name: "events", Subjects: []string{"ev.>"}, Memory: true, Duplicates: time.Minute})
	require.NoError(t, err)
	assert.Equal(t, "events", st.Name())

	seq1, err := st.Publish(ctx, "ev.login", []byte("1"), bus.WithMsgID("a"))
	require.NoError(t, err)
	seqDup, err := st.Publish(ctx, "ev.login", []byte("1 again"), bus.WithMsgID("a"))
	require.NoError(t, err)
	assert.Equal(t, seq1, seqDup, "a duplicate returns the first copy's sequence")
	seq2, err := st.Publish(ctx, "ev.login", []byte("2"), bus.WithMsgID("b"))
	require.NoError(t, err)
	seq3, err := st.Publish(ctx, "ev.logout", []byte("3")) // no MsgID: never a duplicate
	require.NoError(t, err)
	seq4, err := st.Publish(ctx, "ev.logout", []byte("3"))
	require.NoError(t, err)
	assert.Equal(t, []uint64{seq1 + 1, seq2 + 1, seq3 + 1}, []uint64{seq2, seq3, seq4})

	// The stream holds four messages: the duplicate was not stored.
	var got []string
	c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "reader"})
	require.NoError(t, err)
	cctx, stop := context.WithCancel(ctx)
	all := make(chan struct{})
	consume(t, cctx, c, func(m *bus.StreamMsg) {
		got = append(got, fmt.Sprintf("%d %s=%s", m.Seq, m.Subject, m.Data))
		assert.NoError(t, m.Ack(ctx))
		if len(got) == 4 {
			close(all)
		}
	})
	<-all
	stop()
	assert.Equal(t, []string{
		fmt.Sprintf("%d ev.login=1", seq1), fmt.Sprintf("%d ev.login=2", seq2),
		fmt.Sprintf("%d ev.logout=3", seq3), fmt.Sprintf("%d ev.logout=3", seq4),
	}, got)

	_, err = st.Publish(ctx, "elsewhere", []byte("x"))
	assert.ErrorIs(t, err, bus.ErrStreamNotFound, "subject of no stream")
	other, err := b.Stream(ctx, bus.StreamConfig{Name: "other", Subjects: []string{"other.>"}, Memory: true})
	require.NoError(t, err)
	_, err = other.Publish(ctx, "ev.login", []byte("x"))
	assert.ErrorIs(t, err, bus.ErrStreamNotFound, "subject of another stream")
}

func TestStreamConfigErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b := connect(t, s, "stream-config")
	ctx := ctxTimeout(t, 20*time.Second)

	for _, cfg := range []bus.StreamConfig{
		{Name: "", Subjects: []string{"a"}},
		{Name: "a.b", Subjects: []string{"a"}},
		{Name: "ok"},
		{Name: "ok", Subjects: []string{"a..b"}},
		{Name: "ok", Subjects: []string{"a"}, MaxAge: -time.Second},
		{Name: "ok", Subjects: []string{"a"}, MaxMsgs: -1},
		{Name: "ok", Subjects: []string{"a"}, Retention: 9},
	} {
		_, err := b.Stream(ctx, cfg)
		assert.ErrorIs(t, err, ErrInvalidStream, "%+v", cfg)
	}

	st, err := b.Stream(ctx, bus.StreamConfig{Name: "jobs", Subjects: []string{"jobs.>"}, Retention: bus.RetentionWorkQueue})
	require.NoError(t, err)
	_, err = b.Stream(ctx, bus.StreamConfig{Name: "jobs", Subjects: []string{"jobs.>"}, Retention: bus.RetentionWorkQueue, MaxMsgs: 100})
	require.NoError(t, err, "limits can change")
	_, err = b.Stream(ctx, bus.StreamConfig{Name: "jobs", Subjects: []string{"jobs.>"}, Retention: bus.RetentionLimits})
	assert.ErrorIs(t, err, bus.ErrConfigConflict, "retention cannot change")
	_, err = b.Stream(ctx, bus.StreamConfig{Name: "jobs2", Subjects: []string{"jobs.a"}})
	assert.ErrorIs(t, err, bus.ErrConfigConflict, "overlapping subjects")

	for _, cfg := range []bus.ConsumerConfig{
		{Durable: ""},
		{Durable: "a.b"},
		{Durable: "ok", FilterSubject: "a..b"},
		{Durable: "ok", AckWait: -1},
		{Durable: "ok", MaxAckPending: -1},
		{Durable: "ok", DeliverPolicy: 9},
	} {
		_, err := st.Consumer(ctx, cfg)
		assert.ErrorIs(t, err, ErrInvalidStream, "%+v", cfg)
	}
	_, err = st.Consumer(ctx, bus.ConsumerConfig{Durable: "w"})
	require.NoError(t, err)
	_, err = st.Consumer(ctx, bus.ConsumerConfig{Durable: "w", DeliverPolicy: bus.DeliverNew})
	assert.ErrorIs(t, err, bus.ErrConfigConflict, "deliver policy cannot change")
}

// TestStreamWorkQueueOnce runs two members of one durable on two
// connections: every message is handled exactly once, and the work queue
// forgets acked messages.
func TestStreamWorkQueueOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	ctx := ctxTimeout(t, 30*time.Second)
	cfg := bus.StreamConfig{Name: "tickets", Subjects: []string{"tickets.>"}, Retention: bus.RetentionWorkQueue}
	const total = 300

	var (
		mu     sync.Mutex
		seen   = map[uint64]int{}
		byNode = map[string]int{}
		done   = make(chan struct{})
	)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var producer bus.Stream
	for _, node := range []string{"n1", "n2"} {
		b := connect(t, s, node)
		st, err := b.Stream(ctx, cfg)
		require.NoError(t, err)
		producer = st
		c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "matchers", MaxAckPending: 8})
		require.NoError(t, err)
		consume(t, cctx, c, func(m *bus.StreamMsg) {
			time.Sleep(100 * time.Microsecond) // some work, so both members get a share
			assert.NoError(t, m.Ack(ctx))
			mu.Lock()
			defer mu.Unlock()
			seen[m.Seq]++
			byNode[node]++
			if len(seen) == total {
				close(done)
			}
		})
	}
	for i := range total {
		_, err := producer.Publish(ctx, fmt.Sprintf("tickets.%d", i%3), fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not every message was handled")
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	for seq, n := range seen {
		assert.Equal(t, 1, n, "seq %d handled %d times", seq, n)
	}
	t.Logf("handled per member: %v", byNode)
	assert.Positive(t, byNode["n1"], "member n1 got no work")
	assert.Positive(t, byNode["n2"], "member n2 got no work")

	info, err := producer.(*stream).s.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs, "acked messages left in the work queue")
}

// TestStreamNakTerm checks that a nak'ed message comes back (after its
// delay, counted), a terminated one does not, and MaxDeliver bounds
// redeliveries.
func TestStreamNakTerm(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b := connect(t, s, "nak")
	ctx := ctxTimeout(t, 30*time.Second)
	st, err := b.Stream(ctx, bus.StreamConfig{Name: "inbox", Subjects: []string{"inbox.>"}, Memory: true})
	require.NoError(t, err)
	c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "deliverer", MaxDeliver: 3})
	require.NoError(t, err)

	const delay = 300 * time.Millisecond
	type delivery struct {
		data string
		n    uint64
		at   time.Time
	}
	deliveries := make(chan delivery, 16)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	consume(t, cctx, c, func(m *bus.StreamMsg) {
		deliveries <- delivery{string(m.Data), m.NumDelivered, time.Now()}
		switch {
		case string(m.Data) == "retry" && m.NumDelivered == 1:
			assert.NoError(t, m.Nak(delay))
		case string(m.Data) == "poison":
			assert.NoError(t, m.Term())
			assert.ErrorIs(t, m.Ack(ctx), bus.ErrAlreadyAcked, "settled twice")
		case string(m.Data) == "always":
			assert.NoError(t, m.Nak(0))
		default:
			assert.NoError(t, m.Ack(ctx))
		}
	})
	next := func() delivery {
		select {
		case d := <-deliveries:
			return d
		case <-ctx.Done():
			t.Fatal("no delivery")
			return delivery{}
		}
	}

	_, err = st.Publish(ctx, "inbox.u1", []byte("retry"))
	require.NoError(t, err)
	first := next()
	assert.Equal(t, delivery{"retry", 1, first.at}, first)
	again := next()
	assert.Equal(t, delivery{"retry", 2, again.at}, again, "nak'ed message delivered again")
	assert.GreaterOrEqual(t, again.at.Sub(first.at), delay-50*time.Millisecond, "redelivered before the nak delay")

	_, err = st.Publish(ctx, "inbox.u1", []byte("poison"))
	require.NoError(t, err)
	assert.Equal(t, "poison", next().data)
	_, err = st.Publish(ctx, "inbox.u1", []byte("always"))
	require.NoError(t, err)
	for i := range uint64(3) {
		d := next()
		assert.Equal(t, delivery{"always", i + 1, d.at}, d)
	}
	// The server gives up: nothing outstanding, nothing pending.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ackPending, pending := consumerState(t, b, "inbox", "deliverer")
		assert.Zero(c, ackPending)
		assert.Zero(c, pending)
	}, 5*time.Second, 20*time.Millisecond)
	select {
	case d := <-deliveries:
		t.Errorf("unexpected delivery %+v", d)
	default:
	}
}

// TestStreamMaxAckPending checks the backpressure: a consumer that holds
// messages without acking receives at most MaxAckPending of them, the
// producer loses nothing meanwhile, and a full work queue refuses new
// messages instead of dropping old ones.
func TestStreamMaxAckPending(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b := connect(t, s, "backpressure")
	ctx := ctxTimeout(t, 30*time.Second)
	st, err := b.Stream(ctx, bus.StreamConfig{Name: "work", Subjects: []string{"work"}, Retention: bus.RetentionWorkQueue})
	require.NoError(t, err)
	const total, limit = 60, 5
	for i := range total {
		_, err := st.Publish(ctx, "work", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "slow", MaxAckPending: limit})
	require.NoError(t, err)

	// The handler only takes messages; the test acks them, one at a time
	// and only when the handler holds as many as it may.
	var held, maxHeld atomic.Int32
	got := make(chan *bus.StreamMsg, total)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	consume(t, cctx, c, func(m *bus.StreamMsg) {
		n := held.Add(1)
		for {
			old := maxHeld.Load()
			if n <= old || maxHeld.CompareAndSwap(old, n) {
				break
			}
		}
		got <- m
	})
	var holding []*bus.StreamMsg
	seen := map[string]bool{}
	for acked := 0; acked < total; acked++ {
		for len(holding) < min(limit, total-acked) {
			select {
			case m := <-got:
				holding = append(holding, m)
			case <-ctx.Done():
				t.Fatalf("holding %d of %d messages after %d acks", len(holding), limit, acked)
			}
		}
		m := holding[0]
		holding = holding[1:]
		seen[string(m.Data)] = true
		held.Add(-1) // before the ack: the server may deliver the next one at once
		require.NoError(t, m.Ack(ctx))
	}
	assert.Equal(t, int32(limit), maxHeld.Load(), "messages held un-acked at once")
	assert.Len(t, seen, total, "every message handled")

	// A full work queue refuses, and accepts again once work is done.
	full, err := b.Stream(ctx, bus.StreamConfig{Name: "full", Subjects: []string{"full"}, Retention: bus.RetentionWorkQueue, MaxMsgs: 2})
	require.NoError(t, err)
	for i := range 2 {
		_, err := full.Publish(ctx, "full", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	_, err = full.Publish(ctx, "full", []byte("2"))
	require.ErrorIs(t, err, bus.ErrStreamFull)
	fc, err := full.Consumer(ctx, bus.ConsumerConfig{Durable: "drain", MaxAckPending: 1})
	require.NoError(t, err)
	taken := make(chan *bus.StreamMsg, 1) // MaxAckPending 1: never more than one waits here
	fctx, fstop := context.WithCancel(ctx)
	defer fstop()
	consume(t, fctx, fc, func(m *bus.StreamMsg) { taken <- m })
	m := <-taken
	assert.Equal(t, "0", string(m.Data), "the oldest message was kept")
	_, err = full.Publish(ctx, "full", []byte("2"))
	require.ErrorIs(t, err, bus.ErrStreamFull, "taken but not acked: still stored")
	require.NoError(t, m.Ack(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := full.Publish(ctx, "full", []byte("2"))
		assert.NoError(c, err)
	}, 5*time.Second, 20*time.Millisecond, "room after a message was acked")
}

// TestStreamDurable checks that a consumer keeps going across a server
// restart, and that a durable re-opened on a new connection resumes after
// the last acked message.
func TestStreamDurable(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxTimeout(t, 60*time.Second)
	s1, err := StartServer(ctx, ServerConfig{StoreDir: dir, Listen: "127.0.0.1:0", Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	url := s1.ClientURL()
	cfg := bus.StreamConfig{Name: "inbox", Subjects: []string{"inbox.>"}, Retention: bus.RetentionWorkQueue}
	ccfg := bus.ConsumerConfig{Durable: "inbox-writer", AckWait: time.Second}

	b1, err := Connect(ctx, Config{URL: url, Name: "durable-1", Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	st, err := b1.Stream(ctx, cfg)
	require.NoError(t, err)
	c, err := st.Consumer(ctx, ccfg)
	require.NoError(t, err)
	got := make(chan string, 100)
	cctx, stop := context.WithCancel(ctx)
	consumeDone := make(chan error, 1)
	go func() {
		consumeDone <- c.Consume(cctx, func(m *bus.StreamMsg) {
			if err := m.Ack(ctx); err == nil {
				got <- string(m.Data)
			}
		})
	}()
	recv := func(want string) {
		t.Helper()
		select {
		case g := <-got:
			assert.Equal(t, want, g)
		case <-ctx.Done():
			t.Fatalf("did not receive %q", want)
		}
	}
	_, err = st.Publish(ctx, "inbox.u1", []byte("before restart"))
	require.NoError(t, err)
	recv("before restart")

	s1.Shutdown()
	_, addr, _ := strings.Cut(url, "://")
	s2, err := StartServer(ctx, ServerConfig{StoreDir: dir, Listen: addr, Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	t.Cleanup(s2.Shutdown)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := st.Publish(ctx, "inbox.u1", []byte("after restart"))
		assert.NoError(c, err)
	}, 10*time.Second, 50*time.Millisecond)
	recv("after restart")

	stop()
	require.NoError(t, <-consumeDone)
	for i := range 5 {
		_, err := st.Publish(ctx, "inbox.u2", fmt.Appendf(nil, "offline %d", i))
		require.NoError(t, err)
	}
	require.NoError(t, b1.Close())

	b2, err := Connect(ctx, Config{URL: url, Name: "durable-2", Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b2.Close()) })
	st2, err := b2.Stream(ctx, cfg)
	require.NoError(t, err)
	c2, err := st2.Consumer(ctx, ccfg)
	require.NoError(t, err)
	cctx2, stop2 := context.WithCancel(ctx)
	defer stop2()
	consume(t, cctx2, c2, func(m *bus.StreamMsg) {
		if err := m.Ack(ctx); err == nil {
			got <- string(m.Data)
		}
	})
	for i := range 5 {
		recv(fmt.Sprintf("offline %d", i))
	}
	select {
	case g := <-got:
		t.Errorf("unexpected %q", g)
	default:
	}
}

// TestConsumeEndsWithBus checks that Consume returns ErrClosed when the
// bus closes under it.
func TestConsumeEndsWithBus(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b, err := Connect(t.Context(), Config{Server: s, Name: "consume-close"})
	require.NoError(t, err)
	ctx := ctxTimeout(t, 20*time.Second)
	st, err := b.Stream(ctx, bus.StreamConfig{Name: "s", Subjects: []string{"s"}, Memory: true})
	require.NoError(t, err)
	c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "d"})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Consume(ctx, func(m *bus.StreamMsg) { _ = m.Ack(ctx) }) }()
	require.NoError(t, b.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, bus.ErrClosed)
	case <-ctx.Done():
		t.Fatal("Consume did not return after the bus closed")
	}
}

// TestConsumeEndsWhenDeleted checks that Consume returns
// ErrConsumerNotFound when its durable is deleted under it.
func TestConsumeEndsWhenDeleted(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b := connect(t, s, "consume-deleted")
	ctx := ctxTimeout(t, 20*time.Second)
	st, err := b.Stream(ctx, bus.StreamConfig{Name: "s", Subjects: []string{"s"}, Memory: true})
	require.NoError(t, err)
	c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "d"})
	require.NoError(t, err)
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Consume(ctx, func(m *bus.StreamMsg) {
			_ = m.Ack(ctx)
			got <- struct{}{}
		})
	}()
	_, err = st.Publish(ctx, "s", []byte("x"))
	require.NoError(t, err)
	<-got // consuming for real
	require.NoError(t, b.js.DeleteConsumer(ctx, "s", "d"))
	select {
	case err := <-done:
		assert.ErrorIs(t, err, bus.ErrConsumerNotFound)
	case <-ctx.Done():
		t.Fatal("Consume did not return after its consumer was deleted")
	}
}
