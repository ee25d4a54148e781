package loadtest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
)

// The notification API as the swarm uses it.
const (
	// notifyKind is the push kind of notifications; their payload is a
	// taisen.api.v1.Notification.
	notifyKind = "notify"
	// maxUsersPerCall is the most users one Send or Subscribe names.
	maxUsersPerCall = 1000
	// notifyBatch is how many users one Send of the notify scenario
	// names.
	notifyBatch = 100
	// maxPublishing bounds the Publish and Send calls in flight.
	maxPublishing = 64
	// readyTimeout bounds the wait for the fanout subscriptions to reach
	// the sessions' node.
	readyTimeout = 30 * time.Second
	// pollInterval is how often the waits of inbox and disconnect look.
	pollInterval = 10 * time.Millisecond
)

// The classes of notification ids (the letter after the run's prefix).
const (
	classFanout   = 'f' // a fanout item: f<k>.<publish ns>
	classNotify   = 'n' // a notify notification: n<k>.<publish ns>
	classProbe    = 'p' // a probe of the fanout subscriptions
	classStored   = 's' // an inbox STORED item: s<k>
	classRetained = 'r' // an inbox retained item: r<k>
)

// delivery is the bookkeeping of a notification scenario: what was
// published to whom, and what each session received.
type delivery struct {
	cfg Config
	// base is the origin of the publish times carried in the ids, in
	// nanoseconds of the monotonic clock.
	base time.Time
	// prefix starts every notification id and topic name of the run:
	// fresh for each run, so that a reused run id (same accounts) does
	// not collide with the de-duplication of earlier runs.
	prefix string
	// groupOf is the group of session i: its topic (fanout) or its batch
	// (notify); groups is their count.
	groupOf func(i int) int
	groups  int
	// perSession is the items each session expects (inbox).
	perSession int
	// inboxUsers are the accounts the inbox scenario created; loginWave
	// is when its login wave started, in ns since base. Set between the
	// waves, before any receiver starts.
	inboxUsers []string
	loginWave  int64
	// members counts the receivers per group; pubOK the items
	// successfully published per group. Both set up before publishing.
	members []int64
	pubOK   []atomic.Int64
	// ready counts the fanout sessions that received a probe of their
	// topic, in all and per group.
	ready    atomic.Int64
	readyPer []atomic.Int64
	// issued is the highest item number published plus one (ids above
	// are not ours).
	issued atomic.Int64

	expected  atomic.Int64 // deliveries expected so far (fanout, notify)
	delivered atomic.Int64 // expected deliveries received, once each
	dups      atomic.Int64
	complete  atomic.Int64 // inbox: sessions that received every item
	firstPub  atomic.Int64 // ns since base of the first publish
	lastRecv  atomic.Int64 // ns since base of the last delivery

	wg  sync.WaitGroup
	mu  sync.Mutex
	rcs []*receiver // guarded by mu
}

func newDelivery(cfg Config) *delivery {
	var b [4]byte
	_, _ = crand.Read(b[:])
	d := &delivery{cfg: cfg, base: time.Now(), prefix: "lt-" + hex.EncodeToString(b[:]) + "-", groupOf: func(int) int { return 0 }, groups: 1}
	switch cfg.Scenario {
	case ScenarioFanout:
		d.groups = cfg.Topics
		d.groupOf = func(i int) int { return i % cfg.Topics }
	case ScenarioNotify:
		batch := min(notifyBatch, cfg.Sessions)
		d.groups = (cfg.Sessions + batch - 1) / batch
		d.groupOf = func(i int) int { return i / batch }
	case ScenarioInbox:
		d.perSession = cfg.Messages + cfg.Retained
	}
	d.members = make([]int64, d.groups)
	d.pubOK = make([]atomic.Int64, d.groups)
	d.readyPer = make([]atomic.Int64, d.groups)
	return d
}

// since is now in nanoseconds since base.
func (d *delivery) since() int64 { return int64(time.Since(d.base)) }

// topicName is the name of topic g of the run.
func (d *delivery) topicName(g int) string { return fmt.Sprintf("%stopic-%d", d.prefix, g) }

// timedID is the id of item k of class c, carrying its publish time.
func (d *delivery) timedID(c byte, k int) string {
	ns := d.since()
	for {
		first := d.firstPub.Load()
		if (first != 0 && first <= ns) || d.firstPub.CompareAndSwap(first, ns) {
			break
		}
	}
	return d.prefix + string(c) + strconv.Itoa(k) + "." + strconv.FormatInt(ns, 10)
}

// parse splits a notification id of the run into its class, item number
// and publish time (0 when the class carries none).
func (d *delivery) parse(id string) (c byte, k int, pubNs int64, ok bool) {
	rest, found := strings.CutPrefix(id, d.prefix)
	if !found || rest == "" {
		return 0, 0, 0, false
	}
	c, rest = rest[0], rest[1:]
	num, ts, timed := strings.Cut(rest, ".")
	k, err := strconv.Atoi(num)
	if err != nil || k < 0 {
		return 0, 0, 0, false
	}
	if timed {
		if pubNs, err = strconv.ParseInt(ts, 10, 64); err != nil {
			return 0, 0, 0, false
		}
	}
	return c, k, pubNs, true
}

// published records a successful publish of an item to group g.
func (d *delivery) published(g int) {
	d.pubOK[g].Add(1)
	d.expected.Add(d.members[g])
}

// receiver reads one session's pushes.
type receiver struct {
	idx, group int
	sock       *client.Socket
	probed     atomic.Bool
	// Owned by the receiving goroutine until it ends.
	seen   bitset
	unique int64
	dups   int64
	lat    []float32 // ms, publish → receive
	doneNs int64     // inbox: when the last expected item arrived
	stored []string  // inbox: STORED ids received, acknowledged at the end
}

// receive starts reading the pushes of session i until its socket ends.
func (d *delivery) receive(r *runner, i int, sock *client.Socket) *receiver {
	rc := &receiver{idx: i, group: d.groupOf(i), sock: sock}
	d.mu.Lock()
	d.rcs = append(d.rcs, rc)
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for p := range sock.Pushes() {
			if p.GetKind() == notifyKind {
				d.handle(r, rc, p.GetPayload())
			}
		}
	}()
	return rc
}

// handle accounts for one notification received by rc.
func (d *delivery) handle(r *runner, rc *receiver, payload []byte) {
	now := d.since()
	id, err := notificationID(payload)
	if err != nil {
		r.fail("deliver", "undecodable", err, 1)
		return
	}
	c, k, pubNs, ok := d.parse(id)
	if !ok {
		return // not this run's
	}
	if c == classProbe {
		if k%d.groups == rc.group && !rc.probed.Swap(true) {
			d.ready.Add(1)
			d.readyPer[rc.group].Add(1)
		}
		return
	}
	slot, ok := d.slot(rc, c, k)
	if !ok {
		r.fail("deliver", "unexpected", fmt.Errorf("session %d (group %d) received %s", rc.idx, rc.group, id), 1)
		return
	}
	if rc.seen.testAndSet(slot) {
		rc.dups++
		d.dups.Add(1)
		return
	}
	rc.unique++
	d.delivered.Add(1)
	if pubNs > 0 {
		rc.lat = append(rc.lat, float32(float64(now-pubNs)/1e6))
	}
	for {
		last := d.lastRecv.Load()
		if last >= now || d.lastRecv.CompareAndSwap(last, now) {
			break
		}
	}
	if c == classStored {
		rc.stored = append(rc.stored, id)
	}
	if d.cfg.Scenario == ScenarioInbox && rc.unique == int64(d.perSession) {
		rc.doneNs = now
		d.complete.Add(1)
		for ids := rc.stored; len(ids) > 0; {
			n := min(len(ids), notifyBatch)
			if err := rc.sock.Ack(ids[:n]...); err != nil {
				r.fail("ack", errorKind(err), err, 1)
				break
			}
			ids = ids[n:]
		}
	}
}

// notificationID returns the id of an encoded taisen.api.v1.Notification
// without decoding the rest: the swarm reads every delivery of a run, on
// the same cores as the node it measures.
func notificationID(b []byte) (string, error) {
	id := ""
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", fmt.Errorf("notification: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == notificationIDField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", fmt.Errorf("notification id: %w", protowire.ParseError(n))
			}
			id = string(v) // the last one wins, as in proto.Unmarshal
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", fmt.Errorf("notification field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return id, nil
}

// notificationIDField is the field number of taisen.api.v1.Notification.id.
const notificationIDField = 1

// slot is where item k of class c is recorded among rc's items; false
// when rc should not have received it.
func (d *delivery) slot(rc *receiver, c byte, k int) (int, bool) {
	switch {
	case c == classFanout && d.cfg.Scenario == ScenarioFanout, c == classNotify && d.cfg.Scenario == ScenarioNotify:
		if k >= int(d.issued.Load()) || k%d.groups != rc.group {
			return 0, false
		}
		return k / d.groups, true
	case c == classStored && d.cfg.Scenario == ScenarioInbox && k < d.cfg.Messages:
		return k, true
	case c == classRetained && d.cfg.Scenario == ScenarioInbox && k < d.cfg.Retained:
		return d.cfg.Messages + k, true
	}
	return 0, false
}

// receivers returns the receivers started so far.
func (d *delivery) receivers() []*receiver {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*receiver(nil), d.rcs...)
}

// progress is the delivery part of a progress line.
func (d *delivery) progress() string {
	switch d.cfg.Scenario {
	case ScenarioFanout, ScenarioNotify:
		return fmt.Sprintf("delivered %d/%d  dup %d", d.delivered.Load(), d.expected.Load(), d.dups.Load())
	case ScenarioInbox:
		return fmt.Sprintf("delivered %d  complete %d  dup %d", d.delivered.Load(), d.complete.Load(), d.dups.Load())
	}
	return ""
}

// bitset is a growable set of small integers.
type bitset []uint64

// testAndSet adds i and reports whether it was there already.
func (b *bitset) testAndSet(i int) bool {
	w := i / 64
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	m := uint64(1) << (i % 64)
	was := (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

// newAdmin returns a client of the node's notification API that presents
// the server key.
func newAdmin(cfg Config) (adminv1connect.NotifyServiceClient, *http.Client) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = maxPublishing
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	key := cfg.ServerKey
	return adminv1connect.NewNotifyServiceClient(hc, strings.TrimRight(cfg.AdminURL, "/"), connect.WithInterceptors(connect.UnaryInterceptorFunc(
		func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+key)
				return next(ctx, req)
			}
		}))), hc
}

// adminKind classifies an error of the notification API for the report.
func adminKind(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() != connect.CodeUnknown {
		return ce.Code().String()
	}
	return errorKind(err)
}

// setupError is a failed setup call: the run cannot go on.
func setupError(what string, err error) error {
	if connect.CodeOf(err) == connect.CodeUnauthenticated || connect.CodeOf(err) == connect.CodePermissionDenied {
		return fmt.Errorf("%s: %w (the node refused the server key: pass its key with --server-key or TAISEN_SERVER_KEY)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// runDelivery runs a notification scenario after the common setup.
func (r *runner) runDelivery(parent, ctx context.Context, rep *Report, startedAt time.Time, stopProgress, progressDone chan struct{}) (*Report, error) {
	cfg := r.cfg
	adm, ahc := newAdmin(cfg)
	defer ahc.CloseIdleConnections()
	// Fail fast on a refused key or a node without the notification API.
	_, err := adm.ListTopics(ctx, connect.NewRequest(&adminv1.ListTopicsRequest{Limit: 1}))
	if err != nil {
		err = setupError("the notification API at "+cfg.AdminURL, err)
	}
	ok := -1
	switch {
	case err != nil:
	case cfg.Scenario == ScenarioFanout:
		err = r.fanout(ctx, adm, rep)
	case cfg.Scenario == ScenarioNotify:
		err = r.notify(ctx, adm, rep)
	case cfg.Scenario == ScenarioInbox:
		err = r.inbox(ctx, adm, rep)
	case cfg.Scenario == ScenarioDisconnect:
		ok, err = r.disconnect(ctx, adm, rep)
	}
	r.phase.Store("close")
	if n := r.closeAll(); ok < 0 {
		ok = n
	}
	r.dl.wg.Wait() // the receivers end with their sockets
	r.dl.fill(rep, cfg)
	close(stopProgress)
	<-progressDone
	rep, ferr := r.finish(parent, ctx, rep, ok, startedAt)
	if err != nil {
		err = fmt.Errorf("loadtest: %s: %w", cfg.Scenario, err)
		if rep.Aborted == "" {
			rep.Aborted = err.Error()
		}
		if ferr == nil {
			fmt.Fprintf(r.progress, "loadtest: %v\n", err)
		}
		return rep, errors.Join(err, ferr)
	}
	return rep, ferr
}

// fill writes the delivery figures into rep once the receivers ended.
func (d *delivery) fill(rep *Report, cfg Config) {
	rcs := d.receivers()
	var lost, delivered, dups int64
	var lat []float32
	for _, rc := range rcs {
		delivered += rc.unique
		dups += rc.dups
		want := int64(d.perSession)
		if cfg.Scenario == ScenarioFanout || cfg.Scenario == ScenarioNotify {
			want = d.pubOK[rc.group].Load()
		}
		lost += max(want-rc.unique, 0)
		lat = append(lat, rc.lat...)
	}
	switch cfg.Scenario {
	case ScenarioFanout, ScenarioNotify:
		var published int64
		for g := range d.pubOK {
			published += d.pubOK[g].Load()
		}
		rep.Published = ptr(published)
		rep.Expected = ptr(d.expected.Load())
		rep.Deliveries = ptr(delivered)
		rate := 0.0
		if span := d.lastRecv.Load() - d.firstPub.Load(); span > 0 && d.firstPub.Load() > 0 {
			rate = float64(delivered) / (float64(span) / 1e9)
		}
		rep.DeliveriesPerS = ptr(round3(rate))
		rep.LatencyMS = percentiles(lat)
	case ScenarioInbox:
		// Accounts whose session never logged in the second time count
		// as lost too: expected is per account created.
		expected := int64(len(d.inboxUsers)) * int64(d.perSession)
		lost += max(expected-int64(len(rcs))*int64(d.perSession), 0)
		rep.Expected = ptr(expected)
		rep.Delivered = ptr(delivered)
		if d.complete.Load() == int64(len(d.inboxUsers)) && d.loginWave > 0 {
			var last int64
			for _, rc := range rcs {
				last = max(last, rc.doneNs)
			}
			rep.AllDeliveredMS = ptr(round3(float64(last-d.loginWave) / 1e6))
		}
	default:
		return
	}
	rep.Lost = ptr(lost)
	rep.Duplicates = ptr(dups)
}

// holdSince sets rep's hold_s, the main phase of a notification
// scenario: publishing and draining (fanout, notify), waiting for the
// items (inbox), watching the drop (disconnect).
func (r *runner) holdSince(rep *Report, start time.Time) {
	rep.HoldS = round3(time.Since(start).Seconds())
}

// connectPhase connects the sessions (held, with their receivers) and
// records the phase's length in rep.
func (r *runner) connectPhase(ctx context.Context, rep *Report) {
	r.phase.Store("connect")
	start := time.Now()
	notStarted := r.connectAll(ctx)
	r.hc.CloseIdleConnections()
	r.mu.Lock()
	end := r.lastWelcome
	r.mu.Unlock()
	if end.IsZero() {
		end = time.Now()
	}
	rep.ConnectS = round3(end.Sub(start).Seconds())
	if notStarted > 0 {
		r.fail("connect", "not_started", fmt.Errorf("%d sessions not started: %w", notStarted, ctx.Err()), notStarted)
	}
}

// heldSessions returns the sessions held, by index.
func (r *runner) heldSessions() []*heldSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*heldSession
	for _, h := range r.held {
		if h != nil {
			out = append(out, h)
		}
	}
	return out
}

// pace calls do for items k = 0, 1, ... (count of them, or until the time
// until has passed when count is negative), spacing them so that the
// weights (users per call; 0 skips the item) flow at SendRate per second,
// with at most maxPublishing calls in flight. It returns when every call
// ended.
func (r *runner) pace(ctx context.Context, count int, until time.Duration, weight func(k int) int64, do func(ctx context.Context, k int)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxPublishing)
	rate := r.cfg.SendRate
	start := time.Now()
	var units int64
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for k := 0; count < 0 || k < count; k++ {
		w := weight(k)
		if w == 0 {
			continue
		}
		due := time.Duration(float64(units) / rate * float64(time.Second))
		if count < 0 && due >= until {
			return
		}
		if wait := time.Until(start.Add(due)); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		r.dl.issued.Store(int64(k + 1))
		units += w
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			do(ctx, k)
		}()
	}
}

// drain waits until every expected delivery arrived, at most Drain.
func (r *runner) drain(ctx context.Context) {
	r.phase.Store("drain")
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Drain)
	defer cancel()
	_ = poll(ctx, func() bool { return r.dl.delivered.Load() >= r.dl.expected.Load() })
}

// poll calls cond every pollInterval until it holds (nil) or ctx ends.
func poll(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// countMembers sets the group sizes from the receivers started.
func (d *delivery) countMembers() {
	for _, rc := range d.receivers() {
		d.members[rc.group]++
	}
}

// subscribeAll subscribes users to topic, maxUsersPerCall at a time.
func subscribeAll(ctx context.Context, adm adminv1connect.NotifyServiceClient, topic string, users []string) error {
	for len(users) > 0 {
		n := min(len(users), maxUsersPerCall)
		if _, err := adm.Subscribe(ctx, connect.NewRequest(&adminv1.SubscribeRequest{Topic: topic, UserIds: users[:n]})); err != nil {
			return setupError("subscribe to "+topic, err)
		}
		users = users[n:]
	}
	return nil
}

// fanout: sessions subscribed to topics round robin, items published at
// SendRate, each delivery timed.
func (r *runner) fanout(ctx context.Context, adm adminv1connect.NotifyServiceClient, rep *Report) error {
	cfg, d := r.cfg, r.dl
	r.phase.Store("topics")
	topics := make([]string, cfg.Topics)
	for g := range topics {
		topics[g] = d.topicName(g)
		if _, err := adm.CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: topics[g]})); err != nil {
			r.deleteTopics(ctx, adm, topics[:g])
			return setupError("create topic", err)
		}
	}
	defer r.deleteTopics(ctx, adm, topics)
	r.connectPhase(ctx, rep)
	held := r.heldSessions()
	if len(held) == 0 {
		return errors.New("no session connected")
	}
	d.countMembers()
	r.phase.Store("subscribe")
	byTopic := make([][]string, cfg.Topics)
	for _, h := range held {
		byTopic[h.rc.group] = append(byTopic[h.rc.group], h.user)
	}
	for g, users := range byTopic {
		if err := subscribeAll(ctx, adm, topics[g], users); err != nil {
			return err
		}
	}
	if err := r.awaitSubscriptions(ctx, adm, topics, int64(len(held))); err != nil {
		return err
	}
	r.phase.Store("publish")
	defer r.holdSince(rep, time.Now())
	content := []byte("loadtest fanout item")
	r.pace(ctx, cfg.Messages, 0, func(int) int64 { return 1 }, func(ctx context.Context, k int) {
		g := k % cfg.Topics
		_, err := adm.Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: topics[g], Id: d.timedID(classFanout, k),
			Subject: "loadtest", Content: content}))
		if err != nil {
			r.fail("publish", adminKind(err), err, 1)
			return
		}
		d.published(g)
	})
	r.drain(ctx)
	return nil
}

// deleteTopics deletes the run's topics with their subscriptions and
// retained items, also after the run's deadline (bounded).
func (r *runner) deleteTopics(ctx context.Context, adm adminv1connect.NotifyServiceClient, topics []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, t := range topics {
		if _, err := adm.DeleteTopic(ctx, connect.NewRequest(&adminv1.DeleteTopicRequest{Name: t})); err != nil {
			r.fail("cleanup", adminKind(err), fmt.Errorf("delete topic %s: %w", t, err), 1)
		}
	}
}

// awaitSubscriptions publishes probes to the topics until every session
// received one of its topic: subscriptions reach the sessions' nodes
// through the bus, after Subscribe answered.
func (r *runner) awaitSubscriptions(ctx context.Context, adm adminv1connect.NotifyServiceClient, topics []string, sessions int64) error {
	r.phase.Store("probe")
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	d := r.dl
	for round := 0; d.ready.Load() < sessions; round++ {
		for g, topic := range topics {
			if d.readyPer[g].Load() >= d.members[g] {
				continue
			}
			// Probe numbers are in the topic's group, like items.
			id := fmt.Sprintf("%s%c%d", d.prefix, classProbe, round*len(topics)+g)
			if _, err := adm.Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: topic, Id: id, Subject: "loadtest.probe"})); err != nil {
				if ctx.Err() != nil {
					break
				}
				return setupError("publish a probe", err)
			}
		}
		select {
		case <-ctx.Done():
			missing := sessions - d.ready.Load()
			r.fail("subscribe", "not_ready", fmt.Errorf("%d sessions received no item of their topic within %v", missing, readyTimeout), int(missing))
			return nil
		case <-t.C:
		}
	}
	return nil
}

// notify: CONNECTED notifications to batches of online users at
// SendRate per second for Duration, each delivery timed.
func (r *runner) notify(ctx context.Context, adm adminv1connect.NotifyServiceClient, rep *Report) error {
	cfg, d := r.cfg, r.dl
	r.connectPhase(ctx, rep)
	held := r.heldSessions()
	if len(held) == 0 {
		return errors.New("no session connected")
	}
	d.countMembers()
	batches := make([][]string, d.groups)
	for _, h := range held {
		batches[h.rc.group] = append(batches[h.rc.group], h.user)
	}
	r.phase.Store("send")
	defer r.holdSince(rep, time.Now())
	content := []byte("loadtest notification")
	r.pace(ctx, -1, cfg.Duration, func(k int) int64 { return int64(len(batches[k%d.groups])) }, func(ctx context.Context, k int) {
		g := k % d.groups
		resp, err := adm.Send(ctx, connect.NewRequest(&adminv1.SendRequest{UserIds: batches[g], Id: d.timedID(classNotify, k),
			Subject: "loadtest", Content: content, Mode: apiv1.NotifyMode_NOTIFY_MODE_CONNECTED}))
		if err != nil {
			r.fail("send", adminKind(err), err, 1)
			return
		}
		d.published(g)
		for _, res := range resp.Msg.GetResults() {
			if o := res.GetOutcome(); o != adminv1.SendOutcome_SEND_OUTCOME_DELIVERED {
				r.fail("send", outcomeName(o), fmt.Errorf("user %s: %v", res.GetUserId(), o), 1)
			}
		}
	})
	r.drain(ctx)
	return nil
}

// outcomeName is a Send outcome for error kinds: "offline", "stored".
func outcomeName(o adminv1.SendOutcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "SEND_OUTCOME_"))
}

// inbox: accounts created, subscribed to a topic with retained items and
// sent STORED items while offline, then all logging in at once.
func (r *runner) inbox(ctx context.Context, adm adminv1connect.NotifyServiceClient, rep *Report) error {
	cfg, d := r.cfg, r.dl
	// The accounts: log in once and log out, so that each is offline.
	r.phase.Store("create")
	r.logoutAfter = true
	r.users = make([]string, cfg.Sessions)
	r.connectAll(ctx)
	r.logoutAfter = false
	r.mu.Lock()
	var users []string
	for _, u := range r.users {
		if u != "" {
			users = append(users, u)
		}
	}
	r.mu.Unlock()
	d.inboxUsers = users
	if len(users) == 0 {
		return errors.New("no account created")
	}
	if cfg.Retained > 0 {
		r.phase.Store("retain")
		topic := d.topicName(0)
		if _, err := adm.CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: topic, Retain: uint32(cfg.Retained)})); err != nil {
			return setupError("create topic", err)
		}
		defer r.deleteTopics(ctx, adm, []string{topic})
		if err := subscribeAll(ctx, adm, topic, users); err != nil {
			return err
		}
		for k := range cfg.Retained { // in order: retained items come in order
			id := fmt.Sprintf("%s%c%d", d.prefix, classRetained, k)
			if _, err := adm.Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: topic, Id: id, Subject: "loadtest.retained",
				Retain: true})); err != nil {
				return setupError("publish a retained item", err)
			}
		}
	}
	if err := r.store(ctx, adm, users); err != nil {
		return err
	}
	// The login wave.
	r.mu.Lock()
	r.latencies, r.lastWelcome = nil, time.Time{}
	r.held = make([]*heldSession, cfg.Sessions)
	r.mu.Unlock()
	r.started.Store(0)
	r.connected.Store(0)
	d.loginWave = d.since()
	r.connectPhase(ctx, rep)
	r.phase.Store("deliver")
	defer r.holdSince(rep, time.Now())
	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	n := int64(len(d.receivers()))
	_ = poll(wctx, func() bool { return d.complete.Load() >= n })
	return nil
}

// store sends the STORED items to the offline users, a few calls at a
// time, in item order.
func (r *runner) store(ctx context.Context, adm adminv1connect.NotifyServiceClient, users []string) error {
	r.phase.Store("store")
	d := r.dl
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for k := range r.cfg.Messages {
		id := fmt.Sprintf("%s%c%d", d.prefix, classStored, k)
		for rest := users; len(rest) > 0; {
			batch := rest[:min(len(rest), maxUsersPerCall)]
			rest = rest[len(batch):]
			select {
			case <-ctx.Done():
				wg.Wait()
				return fmt.Errorf("store: %w", ctx.Err())
			case sem <- struct{}{}:
			}
			wg.Add(1)
			go func() {
				defer func() {
					<-sem
					wg.Done()
				}()
				resp, err := adm.Send(ctx, connect.NewRequest(&adminv1.SendRequest{UserIds: batch, Id: id, Subject: "loadtest.stored",
					Mode: apiv1.NotifyMode_NOTIFY_MODE_STORED}))
				if err != nil {
					failed.Add(1)
					r.fail("store", adminKind(err), err, 1)
					return
				}
				for _, res := range resp.Msg.GetResults() {
					if o := res.GetOutcome(); o != adminv1.SendOutcome_SEND_OUTCOME_STORED {
						r.fail("store", outcomeName(o), fmt.Errorf("user %s: %v", res.GetUserId(), o), 1)
					}
				}
			}()
		}
	}
	wg.Wait()
	return nil
}

// disconnect: every session closes its socket at once; the node's
// active sessions and the users' presence are watched until they show it.
// It returns the sessions that were connected at the drop.
func (r *runner) disconnect(ctx context.Context, adm adminv1connect.NotifyServiceClient, rep *Report) (int, error) {
	cfg := r.cfg
	before, err := r.metrics.scrape(ctx)
	if err != nil {
		return -1, fmt.Errorf("baseline: %w", err)
	}
	r.connectPhase(ctx, rep)
	held := r.heldSessions()
	if len(held) == 0 {
		return -1, errors.New("no session connected")
	}
	users := make([]string, len(held))
	for i, h := range held {
		users[i] = h.user
	}
	r.phase.Store("presence")
	online, err := r.online(ctx, adm, users)
	if err != nil {
		return -1, setupError("get presence", err)
	}
	if len(online) < len(users) {
		n := len(users) - len(online)
		r.fail("presence", "offline_before_drop", fmt.Errorf("%d connected users read offline before the drop", n), n)
	}

	r.phase.Store("drop")
	r.mu.Lock()
	r.held = nil // closed here, not by closeAll
	r.mu.Unlock()
	ok := 0
	for _, h := range held {
		if err := h.sock.Err(); err != nil {
			r.fail("hold", errorKind(err), err, 1)
		} else {
			ok++
		}
	}
	gate := make(chan struct{})
	var closers sync.WaitGroup
	for _, h := range held {
		closers.Add(1)
		go func() {
			defer closers.Done()
			<-gate
			_ = h.sock.Close()
		}()
	}
	t0 := time.Now()
	close(gate)
	defer r.holdSince(rep, t0)

	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var watchers sync.WaitGroup
	var active, left atomic.Int64
	active.Store(-1)
	left.Store(int64(len(online)))
	r.extra.Store("")
	watchers.Add(2)
	go func() {
		defer watchers.Done()
		err := poll(wctx, func() bool {
			s, err := r.metrics.scrape(wctx)
			if err != nil {
				return false
			}
			active.Store(int64(s.sessions))
			r.extra.Store(fmt.Sprintf("active %d  online %d", active.Load(), left.Load()))
			return s.sessions <= before.sessions
		})
		if err == nil {
			rep.ZeroActiveMS = ptr(round3(float64(time.Since(t0)) / 1e6))
		} else {
			r.fail("disconnect", "active_timeout", fmt.Errorf("the node still had %d active sessions (%v before the run) after %v", active.Load(), before.sessions, cfg.Duration), 1)
		}
	}()
	go func() {
		defer watchers.Done()
		remaining := online
		err := poll(wctx, func() bool {
			still, err := r.online(wctx, adm, remaining)
			if err != nil {
				return false
			}
			remaining = still
			left.Store(int64(len(remaining)))
			return len(remaining) == 0
		})
		if err == nil {
			rep.PresenceOfflineMS = ptr(round3(float64(time.Since(t0)) / 1e6))
		} else {
			r.fail("disconnect", "presence_timeout", fmt.Errorf("%d users still read online after %v", left.Load(), cfg.Duration), 1)
		}
	}()
	watchers.Wait()
	closers.Wait()
	return ok, nil
}

// online returns the users whose presence is not offline, reading up to
// maxUsersPerCall users per GetPresence, a few calls at a time.
func (r *runner) online(ctx context.Context, adm adminv1connect.NotifyServiceClient, users []string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	var errs []error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for rest := users; len(rest) > 0; {
		batch := rest[:min(len(rest), maxUsersPerCall)]
		rest = rest[len(batch):]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			resp, err := adm.GetPresence(ctx, connect.NewRequest(&adminv1.GetPresenceRequest{UserIds: batch}))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, p := range resp.Msg.GetPresences() {
				if p.GetState() != apiv1.PresenceState_PRESENCE_STATE_OFFLINE {
					out = append(out, p.GetUserId())
				}
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
