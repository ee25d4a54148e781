package notify_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/taisentest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func admin(n *taisentest.Node) adminv1connect.NotifyServiceClient {
	return adminv1connect.NewNotifyServiceClient(http.DefaultClient, n.AdminURL, connect.WithInterceptors(connect.UnaryInterceptorFunc(
		func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+n.ServerKey)
				return next(ctx, req)
			}
		})))
}

// player is a Go SDK client logged in on a node.
type player struct {
	t    *testing.T
	s    *client.Socket
	user string
	seen map[string]bool // notifications received, by topic and id
}

func join(t *testing.T, n *taisentest.Node, device string) *player {
	t.Helper()
	c, err := client.New(n.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Login(ctxT(t), client.DeviceCredential(device, true), client.DialOptions{})
	if err != nil {
		t.Fatalf("login %s: %v", device, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &player{t: t, s: s, user: s.Welcome().GetUserId()}
}

// note reads the next notification not seen before: delivery is at
// least once (a login racing a subscription may push a retained item
// twice), and clients de-duplicate by id, as the SDK does.
func (p *player) note() *apiv1.Notification {
	p.t.Helper()
	for {
		n := p.anyNote()
		key := n.Topic + "\x00" + n.Id
		if p.seen == nil {
			p.seen = map[string]bool{}
		}
		if !p.seen[key] {
			p.seen[key] = true
			return n
		}
	}
}

// anyNote reads the next push and decodes its notification.
func (p *player) anyNote() *apiv1.Notification {
	p.t.Helper()
	select {
	case push, ok := <-p.s.Pushes():
		if !ok {
			p.t.Fatalf("socket ended: %v", p.s.Err())
		}
		if push.GetKind() != "notify" || push.GetPayloadType() != "taisen.api.v1.Notification" {
			p.t.Fatalf("push %v, want a notification", push)
		}
		n := &apiv1.Notification{}
		if err := proto.Unmarshal(push.GetPayload(), n); err != nil {
			p.t.Fatal(err)
		}
		return n
	case <-time.After(10 * time.Second):
		p.t.Fatal("no notification")
	}
	return nil
}

// none checks that no push is waiting (after a round trip, so anything
// sent before it has arrived).
func (p *player) none() {
	p.t.Helper()
	if _, err := p.s.Ping(ctxT(p.t)); err != nil {
		p.t.Fatal(err)
	}
	select {
	case push := <-p.s.Pushes():
		p.t.Fatalf("unexpected push %v", push)
	default:
	}
}

func (p *player) call(name string, req, resp proto.Message) error {
	b, _ := proto.Marshal(req)
	out, err := p.s.RPC(ctxT(p.t), name, b)
	if err != nil {
		return err
	}
	return proto.Unmarshal(out, resp)
}

func send(t *testing.T, n *taisentest.Node, mode apiv1.NotifyMode, id string, users ...string) []adminv1.SendOutcome {
	t.Helper()
	resp, err := admin(n).Send(ctxT(t), connect.NewRequest(&adminv1.SendRequest{UserIds: users, Id: id, Subject: "test",
		ContentJson: `{"hello":1}`, Mode: mode}))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	var out []adminv1.SendOutcome
	for _, r := range resp.Msg.Results {
		out = append(out, r.Outcome)
	}
	return out
}

func TestModes(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	alice := join(t, n, "device-notify-alice")

	got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, "", alice.user)
	if got[0] != adminv1.SendOutcome_SEND_OUTCOME_DELIVERED {
		t.Fatalf("connected to an online user: %v", got)
	}
	if note := alice.note(); note.Subject != "test" || string(note.Content) != `{"hello":1}` || note.ContentType != "application/json" {
		t.Fatalf("notification %v", note)
	}
	// Not playing yet.
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_PLAYING, "", alice.user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_NOT_PLAYING {
		t.Fatalf("playing to a user not playing: %v", got)
	}
	st := &apiv1.SetStatusResponse{}
	if err := alice.call("presence.status.set", &apiv1.SetStatusRequest{Playing: true, Activity: "ranked"}, st); err != nil {
		t.Fatal(err)
	}
	if st.Presence.State != apiv1.PresenceState_PRESENCE_STATE_PLAYING || st.Presence.Activity != "ranked" {
		t.Fatalf("status %v", st.Presence)
	}
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_PLAYING, "", alice.user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DELIVERED {
		t.Fatalf("playing to a playing user: %v", got)
	}
	alice.note()
	// A producer id is delivered once.
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, "maint-1", alice.user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DELIVERED {
		t.Fatalf("id maint-1: %v", got)
	}
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, "maint-1", alice.user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE {
		t.Fatalf("id maint-1 again: %v", got)
	}
	// Offline users are told apart.
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, "", "no-such-user"); got[0] != adminv1.SendOutcome_SEND_OUTCOME_OFFLINE {
		t.Fatalf("connected to an offline user: %v", got)
	}
	alice.note()
	alice.none()
	// Presence as the server API sees it.
	pres, err := admin(n).GetPresence(ctxT(t), connect.NewRequest(&adminv1.GetPresenceRequest{UserIds: []string{alice.user, "no-such-user"}}))
	if err != nil {
		t.Fatal(err)
	}
	if p := pres.Msg.Presences; p[0].State != apiv1.PresenceState_PRESENCE_STATE_PLAYING || p[1].State != apiv1.PresenceState_PRESENCE_STATE_OFFLINE {
		t.Fatalf("presence %v", p)
	}
}

// TestStoredInbox: stored items wait for the next login, come in order,
// go away when acknowledged, and never come after they expired.
func TestStoredInbox(t *testing.T) {
	clk := clock.NewFake(time.Now())
	n := taisentest.StartNode(t, taisentest.Options{Clock: clk})
	p := join(t, n, "device-inbox-0001")
	user := p.user
	if err := logout(p); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, fmt.Sprintf("gift-%d", i), user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_STORED {
			t.Fatalf("stored to an offline user: %v", got)
		}
	}
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "gift-1", user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE {
		t.Fatalf("same id again: %v", got)
	}
	// One that expires before the login.
	if _, err := admin(n).Send(ctxT(t), connect.NewRequest(&adminv1.SendRequest{UserIds: []string{user}, Id: "short", TtlMs: 1000,
		Mode: apiv1.NotifyMode_NOTIFY_MODE_STORED})); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)

	p = join(t, n, "device-inbox-0001")
	for i := 1; i <= 3; i++ {
		if note := p.note(); note.Id != fmt.Sprintf("gift-%d", i) || note.Mode != apiv1.NotifyMode_NOTIFY_MODE_STORED {
			t.Fatalf("item %d: %v", i, note)
		}
	}
	p.none() // "short" expired
	list := &apiv1.ListInboxResponse{}
	if err := p.call("notify.inbox.list", &apiv1.ListInboxRequest{Limit: 2}, list); err != nil || len(list.Items) != 2 || list.NextCursor == "" {
		t.Fatalf("list page 1: %v %v", list, err)
	}
	if err := p.s.Ack("gift-1", "gift-2"); err != nil {
		t.Fatal(err)
	}
	del := &apiv1.DeleteInboxResponse{}
	if err := p.call("notify.inbox.delete", &apiv1.DeleteInboxRequest{Ids: []string{"gift-3"}}, del); err != nil || del.Deleted != 1 {
		t.Fatalf("delete: %v %v", del, err)
	}
	waitFor(t, "the acks to be recorded", func() bool {
		list := &apiv1.ListInboxResponse{}
		return p.call("notify.inbox.list", &apiv1.ListInboxRequest{}, list) == nil && len(list.Items) == 0
	})
	_ = logout(p)
	p = join(t, n, "device-inbox-0001")
	p.none()
	// An acknowledged id is not stored again within the window.
	if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "gift-1", user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE {
		t.Fatalf("acknowledged id again: %v", got)
	}
}

func logout(p *player) error { return p.s.Logout(ctxT(p.t)) }

// TestDroppedSessionsLeaveItemsOnce: a session that drops with stored
// items it never acknowledged leaves them in the inbox, once each; nothing
// is forwarded anywhere, so the bus work stays bounded.
func TestDroppedSessionsLeaveItemsOnce(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	p := join(t, n, "device-drop-00001")
	user := p.user
	const rounds = 5
	before := nodeRequests(t, n)
	for i := 0; i < rounds; i++ {
		if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, fmt.Sprintf("item-%d", i), user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DELIVERED {
			t.Fatalf("round %d: %v", i, got)
		}
		_ = p.s.Close() // drops without acknowledging anything
		p = join(t, n, "device-drop-00001")
		for j := 0; j <= i; j++ { // every item so far, again, in order
			if note := p.note(); note.Id != fmt.Sprintf("item-%d", j) {
				t.Fatalf("round %d item %d: %v", i, j, note)
			}
		}
		p.none()
	}
	list := &apiv1.ListInboxResponse{}
	if err := p.call("notify.inbox.list", &apiv1.ListInboxRequest{}, list); err != nil || len(list.Items) != rounds {
		t.Fatalf("inbox holds %d items, want each of %d once: %v", len(list.Items), rounds, err)
	}
	// One delivery request per send; the drops and logins added none
	// (redelivery at login is local, from the store).
	if got := nodeRequests(t, n) - before; got != rounds {
		t.Errorf("%v delivery requests on the bus for %d sends, want one each: nothing may forward", got, rounds)
	}
}

// nodeRequests sums taisen_node_requests_total of the node's delivery
// kinds, from its metrics.
func nodeRequests(t *testing.T, n *taisentest.Node) float64 {
	t.Helper()
	resp, err := http.Get(n.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, `taisen_node_requests_total{kind="deliver`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// TestTopicsAcrossNodes: a topic item published via node B reaches a
// subscriber on node A; retained items come at login and on subscribe;
// per-user sends via B reach A.
func TestTopicsAcrossNodes(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	ctx := ctxT(t)
	if _, err := admin(b).CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: "news", Retain: 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := admin(b).CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: "lobby", ClientsMaySubscribe: true})); err != nil {
		t.Fatal(err)
	}
	onA := join(t, a, "device-topic-onA")
	if _, err := admin(b).Subscribe(ctx, connect.NewRequest(&adminv1.SubscribeRequest{Topic: "news", UserIds: []string{onA.user}})); err != nil {
		t.Fatal(err)
	}
	// Wait until A's index follows the topic: a published item arrives.
	publish := func(id string, retain bool) {
		t.Helper()
		if _, err := admin(b).Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: "news", Id: id, Subject: "patch", Retain: retain})); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the subscription to reach node A", func() bool {
		publish(fmt.Sprintf("probe-%d", time.Now().UnixNano()), false)
		select {
		case push := <-onA.s.Pushes():
			return push != nil
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	for len(onA.s.Pushes()) > 0 {
		<-onA.s.Pushes()
	}
	for i := 1; i <= 3; i++ {
		publish(fmt.Sprintf("patch-%d", i), true)
		// Live, or (at least once) its retained copy first when the
		// player's login job read the topic's items just after the
		// publish kept it: clients de-duplicate by id either way.
		if note := onA.note(); note.Id != fmt.Sprintf("patch-%d", i) || note.Topic != "news" {
			t.Fatalf("live item %d: %v", i, note)
		}
	}
	// A new subscriber logging in on A gets the last two retained items.
	later := join(t, a, "device-topic-later")
	if _, err := admin(b).Subscribe(ctx, connect.NewRequest(&adminv1.SubscribeRequest{Topic: "news", UserIds: []string{later.user}})); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"patch-2", "patch-3"} {
		if note := later.note(); note.Id != want || !note.Retained {
			t.Fatalf("retained on subscribe: %v, want %s", note, want)
		}
	}
	_ = later.s.Close()
	later = join(t, b, "device-topic-later") // at every login, on either node
	for _, want := range []string{"patch-2", "patch-3"} {
		if note := later.note(); note.Id != want || !note.Retained {
			t.Fatalf("retained at login: %v, want %s", note, want)
		}
	}
	// Client-side subscriptions follow the topic's policy.
	resp := &apiv1.TopicSubscriptionResponse{}
	if err := onA.call("notify.topics.subscribe", &apiv1.TopicSubscriptionRequest{Topic: "news"}, resp); client.CodeOf(err) != realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("subscribe to a server-only topic: %v", err)
	}
	if err := onA.call("notify.topics.subscribe", &apiv1.TopicSubscriptionRequest{Topic: "lobby"}, resp); err != nil || !resp.Changed {
		t.Fatalf("subscribe to lobby: %v %v", resp, err)
	}
	mine := &apiv1.ListMyTopicsResponse{}
	if err := onA.call("notify.topics.list", &apiv1.ListMyTopicsRequest{}, mine); err != nil || len(mine.Topics) != 2 {
		t.Fatalf("my topics: %v %v", mine, err)
	}
	// A per-user notification sent via B reaches the player on A.
	if got := send(t, b, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, "", onA.user); got[0] != adminv1.SendOutcome_SEND_OUTCOME_DELIVERED {
		t.Fatalf("send via B: %v", got)
	}
	if note := onA.note(); note.Topic != "" {
		t.Fatalf("per-user notification: %v", note)
	}
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// presenceNext reads the next presence push.
func (p *player) presenceNext() *apiv1.Presence {
	p.t.Helper()
	select {
	case push, ok := <-p.s.Pushes():
		if !ok {
			p.t.Fatalf("socket ended: %v", p.s.Err())
		}
		if push.GetKind() != "presence" {
			p.t.Fatalf("push %v, want presence", push)
		}
		pr := &apiv1.Presence{}
		if err := proto.Unmarshal(push.GetPayload(), pr); err != nil {
			p.t.Fatal(err)
		}
		return pr
	case <-time.After(20 * time.Second):
		p.t.Fatal("no presence change")
	}
	return nil
}

// TestPresenceFollow: a follower on node A hears a user on node B come
// online, start playing, log out, and go away with a node that stopped.
func TestPresenceFollow(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	alice := join(t, a, "device-follow-alice")
	bob := join(t, b, "device-follow-bob")
	bobID := bob.user

	resp := &apiv1.FollowResponse{}
	if err := alice.call("presence.follow", &apiv1.FollowRequest{UserIds: []string{bobID}}, resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Presences) != 1 || resp.Presences[0].State != apiv1.PresenceState_PRESENCE_STATE_ONLINE {
		t.Fatalf("follow: %v", resp.Presences)
	}
	st := &apiv1.SetStatusResponse{}
	if err := bob.call("presence.status.set", &apiv1.SetStatusRequest{Playing: true, Activity: "duel"}, st); err != nil {
		t.Fatal(err)
	}
	if pr := alice.presenceNext(); pr.UserId != bobID || pr.State != apiv1.PresenceState_PRESENCE_STATE_PLAYING || pr.Activity != "duel" {
		t.Fatalf("after status: %v", pr)
	}
	if err := logout(bob); err != nil {
		t.Fatal(err)
	}
	if pr := alice.presenceNext(); pr.State != apiv1.PresenceState_PRESENCE_STATE_OFFLINE {
		t.Fatalf("after logout: %v", pr)
	}
	bob = join(t, b, "device-follow-bob")
	if pr := alice.presenceNext(); pr.State != apiv1.PresenceState_PRESENCE_STATE_ONLINE {
		t.Fatalf("after login: %v", pr)
	}
	// Node B stops: its heartbeat record expires and A tells the follower.
	b.Stop()
	if pr := alice.presenceNext(); pr.State != apiv1.PresenceState_PRESENCE_STATE_OFFLINE {
		t.Fatalf("after node B stopped: %v", pr)
	}
	pres, err := admin(a).GetPresence(ctxT(t), connect.NewRequest(&adminv1.GetPresenceRequest{UserIds: []string{bobID}}))
	if err != nil || pres.Msg.Presences[0].State != apiv1.PresenceState_PRESENCE_STATE_OFFLINE {
		t.Fatalf("presence of a user on a stopped node: %v %v", pres, err)
	}
	// Unfollow: no more pushes.
	if err := alice.call("presence.unfollow", &apiv1.FollowRequest{UserIds: []string{bobID}}, resp); err != nil {
		t.Fatal(err)
	}
	alice.none()
}

// TestLoginWave: users log in at once, some with stored items and some
// with none (their logins are checked together); each gets its own items
// and nobody gets another's.
func TestLoginWave(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	const users = 24
	ids := make([]string, users)
	for i := range users {
		p := join(t, n, fmt.Sprintf("device-wave-%04d", i))
		ids[i] = p.user
		if err := logout(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < users; i += 3 { // every third user has an item
		if got := send(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "wave-"+ids[i], ids[i]); got[0] != adminv1.SendOutcome_SEND_OUTCOME_STORED {
			t.Fatalf("stored to an offline user: %v", got)
		}
	}
	players := make([]*player, users)
	errs := make(chan error, users)
	for i := range users {
		go func() {
			c, err := client.New(n.ClientURL)
			if err == nil {
				var s *client.Socket
				s, err = c.Login(ctxT(t), client.DeviceCredential(fmt.Sprintf("device-wave-%04d", i), true), client.DialOptions{})
				if err == nil {
					t.Cleanup(func() { _ = s.Close() })
					players[i] = &player{t: t, s: s, user: s.Welcome().GetUserId()}
				}
			}
			errs <- err
		}()
	}
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range players {
		if i%3 == 0 {
			if note := p.note(); note.Id != "wave-"+p.user {
				t.Errorf("user %d: got %v, want its item", i, note)
			}
		}
		p.none()
	}
}

// TestStatusMovesWithResume: a player playing on node A who resumes on
// node B is still playing there, at once.
func TestStatusMovesWithResume(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	p := join(t, a, "device-status-move")
	st := &apiv1.SetStatusResponse{}
	if err := p.call("presence.status.set", &apiv1.SetStatusRequest{Playing: true, Activity: "raid"}, st); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(b.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	sess := p.s.Session()
	resumeID, last := p.s.SessionID(), p.s.LastSeq()
	_ = p.s.Close()
	s, err := c.Dial(ctxT(t), client.DialOptions{Session: sess, ResumeSessionID: resumeID, LastSeq: last})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Welcome().GetResumed() || s.Welcome().GetNodeId() != b.NodeID {
		t.Fatalf("welcome %v, want resumed on B", s.Welcome())
	}
	pres, err := admin(a).GetPresence(ctxT(t), connect.NewRequest(&adminv1.GetPresenceRequest{UserIds: []string{p.user}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := pres.Msg.Presences[0]; got.State != apiv1.PresenceState_PRESENCE_STATE_PLAYING || got.Activity != "raid" {
		t.Fatalf("presence after the resume on B: %v, want playing raid", got)
	}
}

// TestPresenceManyFollowers: more sessions of a node than a small set
// holds follow one user; each hears every change once, and those that
// unfollowed or ended hear nothing more while the rest still do.
func TestPresenceManyFollowers(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	bob := join(t, n, "device-many-bob")
	carol := join(t, n, "device-many-carol")
	const count = 24
	fans := make([]*player, count)
	for i := range fans {
		fans[i] = join(t, n, fmt.Sprintf("device-many-fan-%02d", i))
		resp := &apiv1.FollowResponse{}
		if err := fans[i].call("presence.follow", &apiv1.FollowRequest{UserIds: []string{bob.user, carol.user}}, resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Presences) != 2 {
			t.Fatalf("follow: %v", resp.Presences)
		}
	}
	setStatus := func(p *player, activity string) {
		t.Helper()
		if err := p.call("presence.status.set", &apiv1.SetStatusRequest{Playing: true, Activity: activity}, &apiv1.SetStatusResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(ps []*player, user, activity string) {
		t.Helper()
		for i, p := range ps {
			if pr := p.presenceNext(); pr.UserId != user || pr.Activity != activity {
				t.Fatalf("follower %d: %v, want %s %s", i, pr, user, activity)
			}
		}
	}
	setStatus(bob, "first")
	expect(fans, bob.user, "first")
	// Eight unfollow bob, eight leave; carol stays followed by all.
	unfollowed, left, stay := fans[:8], fans[8:16], fans[16:]
	for _, p := range unfollowed {
		if err := p.call("presence.unfollow", &apiv1.FollowRequest{UserIds: []string{bob.user}}, &apiv1.FollowResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range left {
		if err := logout(p); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(bob, "second")
	expect(stay, bob.user, "second")
	for _, p := range unfollowed {
		p.none()
	}
	setStatus(carol, "third")
	expect(append(unfollowed, stay...), carol.user, "third")
}
