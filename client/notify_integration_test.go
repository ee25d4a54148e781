package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/taisentest"
)

// notifyAdmin is the server-to-server NotifyService of a node, with its
// server key.
func notifyAdmin(n *taisentest.Node) adminv1connect.NotifyServiceClient {
	return adminv1connect.NewNotifyServiceClient(http.DefaultClient, n.AdminURL, connect.WithInterceptors(connect.UnaryInterceptorFunc(
		func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+n.ServerKey)
				return next(ctx, req)
			}
		})))
}

// sendNote sends a notification to a user through the server API and
// returns its outcome.
func sendNote(t *testing.T, n *taisentest.Node, mode apiv1.NotifyMode, id, user string) adminv1.SendOutcome {
	t.Helper()
	resp, err := notifyAdmin(n).Send(testCtx(t), connect.NewRequest(&adminv1.SendRequest{UserIds: []string{user}, Id: id,
		Subject: "gift", ContentJson: `{"coins":5}`, Mode: mode}))
	require.NoError(t, err)
	return resp.Msg.Results[0].Outcome
}

// notifSock signs a new (or the given) device in with the typed
// notification stream on.
func notifSock(t *testing.T, n *taisentest.Node, f Format, device string, o DialOptions) *Socket {
	t.Helper()
	if o.Notifications == nil {
		o.Notifications = &NotificationOptions{}
	}
	return loginSock(t, newTestClient(t, n, WithFormat(f)), DeviceCredential(device, true), o)
}

// nextNote waits for the next notification.
func nextNote(t *testing.T, s *Socket) *apiv1.Notification {
	t.Helper()
	select {
	case n, ok := <-s.Notifications():
		require.True(t, ok, "notifications closed: %v", s.Err())
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
		return nil
	}
}

// noNote checks that nothing waits on Notifications or Pushes after a
// round trip, so that whatever the server sent before has arrived.
func noNote(t *testing.T, s *Socket) {
	t.Helper()
	_, err := s.Ping(testCtx(t))
	require.NoError(t, err)
	select {
	case n := <-s.Notifications():
		t.Fatalf("unexpected notification %v", n)
	case p := <-s.Pushes():
		t.Fatalf("unexpected push %v", p)
	default:
	}
}

// waitUntil polls cond until it holds, failing after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inboxIDs(t *testing.T, s *Socket) []string {
	t.Helper()
	items, next, err := s.ListInbox(testCtx(t), "", 0)
	require.NoError(t, err)
	require.Empty(t, next)
	var ids []string
	for _, it := range items {
		ids = append(ids, it.GetId())
	}
	return ids
}

var formats = []Format{FormatBinary, FormatJSON}

// TestIntegrationNotifyInbox: stored notifications arrive typed on
// Notifications (not on Pushes), the inbox lists them page by page, and
// acknowledging or deleting removes them.
func TestIntegrationNotifyInbox(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			dev := newDevice(t)
			s := notifSock(t, n, f, dev, DialOptions{})
			user := s.Welcome().GetUserId()
			for i := 1; i <= 3; i++ {
				require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, fmt.Sprintf("gift-%d", i), user))
				note := nextNote(t, s)
				assert.Equal(t, fmt.Sprintf("gift-%d", i), note.GetId())
				assert.Equal(t, apiv1.NotifyMode_NOTIFY_MODE_STORED, note.GetMode())
				assert.Equal(t, "gift", note.GetSubject())
				assert.JSONEq(t, `{"coins":5}`, string(note.GetContent()))
				assert.Equal(t, "application/json", note.GetContentType())
			}
			noNote(t, s)

			ctx := testCtx(t)
			page, next, err := s.ListInbox(ctx, "", 2)
			require.NoError(t, err)
			require.Len(t, page, 2)
			require.NotEmpty(t, next)
			assert.Equal(t, "gift-1", page[0].GetId())
			assert.Equal(t, "gift-2", page[1].GetId())
			page, next, err = s.ListInbox(ctx, next, 2)
			require.NoError(t, err)
			require.Len(t, page, 1)
			assert.Empty(t, next)
			assert.Equal(t, "gift-3", page[0].GetId())
			_, _, err = s.ListInbox(ctx, "not-a-cursor", 0)
			assert.Equal(t, CodeBadRequest, CodeOf(err), "err = %v", err)
			_, _, err = s.ListInbox(ctx, "", 101)
			assert.Error(t, err)

			require.NoError(t, s.AckNotifications("gift-1", "gift-2"))
			waitUntil(t, "the acks to be recorded", func() bool {
				ids := inboxIDs(t, s)
				return len(ids) == 1 && ids[0] == "gift-3"
			})
			deleted, err := s.DeleteNotifications(ctx, "gift-3", "no-such-item")
			require.NoError(t, err)
			assert.Equal(t, 1, deleted)
			assert.Empty(t, inboxIDs(t, s))
			assert.Error(t, s.AckNotifications(""), "an empty id")
			assert.Error(t, s.AckNotifications(strings.Repeat("x", 129)), "an id too long")

			// Acknowledged items do not come back at the next login.
			require.NoError(t, s.Logout(ctx))
			s2 := notifSock(t, n, f, dev, DialOptions{})
			noNote(t, s2)
		})
	}
}

// TestIntegrationNotifyTopicsAndStatus: topic subscriptions by the
// client, the retained items they bring, live topic items, and the
// session's status.
func TestIntegrationNotifyTopicsAndStatus(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	adm := notifyAdmin(n)
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			ctx := testCtx(t)
			lobby, closed := "lobby-"+f.String(), "staff-"+f.String()
			_, err := adm.CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: lobby, Retain: 2, ClientsMaySubscribe: true}))
			require.NoError(t, err)
			_, err = adm.CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: closed}))
			require.NoError(t, err)
			_, err = adm.Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: lobby, Id: "news-1", Subject: "news", Retain: true}))
			require.NoError(t, err)

			s := notifSock(t, n, f, newDevice(t), DialOptions{})
			changed, err := s.SubscribeTopic(ctx, lobby)
			require.NoError(t, err)
			assert.True(t, changed)
			note := nextNote(t, s)
			assert.Equal(t, "news-1", note.GetId())
			assert.Equal(t, lobby, note.GetTopic())
			assert.True(t, note.GetRetained(), "the retained item comes on subscribe")
			changed, err = s.SubscribeTopic(ctx, lobby)
			require.NoError(t, err)
			assert.False(t, changed, "already subscribed")
			mine, err := s.MyTopics(ctx)
			require.NoError(t, err)
			assert.Equal(t, []string{lobby}, mine)

			_, err = s.SubscribeTopic(ctx, closed)
			assert.Equal(t, CodePermissionDenied, CodeOf(err), "err = %v", err)
			_, err = s.SubscribeTopic(ctx, "no-such-topic")
			assert.Equal(t, CodeNotFound, CodeOf(err), "err = %v", err)

			_, err = adm.Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: lobby, Id: "news-2", Subject: "news"}))
			require.NoError(t, err)
			note = nextNote(t, s)
			assert.Equal(t, "news-2", note.GetId())
			assert.False(t, note.GetRetained())

			changed, err = s.UnsubscribeTopic(ctx, lobby)
			require.NoError(t, err)
			assert.True(t, changed)
			changed, err = s.UnsubscribeTopic(ctx, lobby)
			require.NoError(t, err)
			assert.False(t, changed)
			mine, err = s.MyTopics(ctx)
			require.NoError(t, err)
			assert.Empty(t, mine)

			user := s.Welcome().GetUserId()
			p, err := s.SetStatus(ctx, true, "ranked match")
			require.NoError(t, err)
			assert.Equal(t, user, p.GetUserId())
			assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_PLAYING, p.GetState())
			assert.Equal(t, "ranked match", p.GetActivity())
			pres, err := adm.GetPresence(ctx, connect.NewRequest(&adminv1.GetPresenceRequest{UserIds: []string{user}}))
			require.NoError(t, err)
			assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_PLAYING, pres.Msg.Presences[0].GetState())
			assert.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_PLAYING, "", user))
			assert.Equal(t, apiv1.NotifyMode_NOTIFY_MODE_PLAYING, nextNote(t, s).GetMode())
			p, err = s.SetStatus(ctx, false, "")
			require.NoError(t, err)
			assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_ONLINE, p.GetState())
			_, err = s.SetStatus(ctx, true, strings.Repeat("é", 129))
			assert.Error(t, err)
		})
	}
}

// TestIntegrationNotifyDedupAfterReset: a stored notification delivered
// live and not acknowledged comes again when the socket reconnects on a
// fresh session (the old one expired); the socket drops the copy.
func TestIntegrationNotifyDedupAfterReset(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.ResumeGrace = 500 * time.Millisecond
		c.Gateway.SessionTTL = 3 * time.Second
	}})
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			// Reconnect only after the grace (and the server's 1s sweep)
			// is over.
			s := notifSock(t, n, f, newDevice(t), DialOptions{AutoReconnect: true,
				Backoff: Backoff{Min: 2500 * time.Millisecond, Max: 2500 * time.Millisecond}})
			user := s.Welcome().GetUserId()
			require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "once", user))
			assert.Equal(t, "once", nextNote(t, s).GetId())

			dropConn(t, s)
			require.Equal(t, EventReset, nextEvent(t, s, EventResumed, EventReset).Kind)
			// The login of the fresh session pushes the item again (push
			// seq 1 of the new session): it is counted, not delivered.
			waitUntil(t, "the stored item to be pushed again", func() bool { return s.LastSeq() >= 1 })
			noNote(t, s)
			assert.Equal(t, []string{"once"}, inboxIDs(t, s), "not acknowledged: still kept")

			// A new notification still comes through.
			require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, "", user))
			assert.Equal(t, apiv1.NotifyMode_NOTIFY_MODE_CONNECTED, nextNote(t, s).GetMode())
			require.NoError(t, s.AckNotifications("once"))
			waitUntil(t, "the ack", func() bool { return len(inboxIDs(t, s)) == 0 })
		})
	}
}

// TestIntegrationNotifyDedupAcrossNodes: the sockets of one user on two
// nodes, one after the other, share a Deduper: the item the first one
// received is not delivered again by the second, and an item the
// application acknowledged (but whose ack never reached the server) is
// acknowledged again when it comes back.
func TestIntegrationNotifyDedupAcrossNodes(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	d := NewDeduper(16)
	dev := newDevice(t)
	opts := DialOptions{Notifications: &NotificationOptions{Dedup: d}}

	s1 := notifSock(t, a, FormatBinary, dev, opts)
	user := s1.Welcome().GetUserId()
	require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, b, apiv1.NotifyMode_NOTIFY_MODE_STORED, "seen", user))
	assert.Equal(t, "seen", nextNote(t, s1).GetId())
	require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, b, apiv1.NotifyMode_NOTIFY_MODE_STORED, "acked", user))
	assert.Equal(t, "acked", nextNote(t, s1).GetId())
	require.NoError(t, s1.Logout(testCtx(t)))
	// The application acknowledged "acked", but the socket ended before
	// the Ack frame went out.
	d.acked(dedupKey("", "acked"))
	require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_STORED, sendNote(t, a, apiv1.NotifyMode_NOTIFY_MODE_STORED, "new", user))

	// On node B, in JSON: the login pushes seen, acked, new; only new is
	// delivered, and acked is acknowledged again.
	s2 := notifSock(t, b, FormatJSON, dev, opts)
	note := nextNote(t, s2)
	assert.Equal(t, "new", note.GetId())
	waitUntil(t, "the login pushes", func() bool { return s2.LastSeq() >= 3 })
	noNote(t, s2)
	waitUntil(t, "the repeated ack", func() bool {
		ids := inboxIDs(t, s2)
		return len(ids) == 2 && ids[0] == "seen" && ids[1] == "new"
	})
	assert.Equal(t, 3, d.Len())
}

// TestIntegrationNotifyAutoAck: with AutoAck, a stored notification the
// application received leaves the inbox without an explicit ack.
func TestIntegrationNotifyAutoAck(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			s := notifSock(t, n, f, newDevice(t), DialOptions{Notifications: &NotificationOptions{AutoAck: true}})
			user := s.Welcome().GetUserId()
			require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "auto", user))
			assert.Equal(t, "auto", nextNote(t, s).GetId())
			waitUntil(t, "the automatic ack", func() bool { return len(inboxIDs(t, s)) == 0 })
		})
	}
}

// TestIntegrationAckBatching: acknowledging 150 notifications one by one
// sends a few Ack frames of at most 64 ids, within the server's budget of
// fire-and-forget messages (120 in a burst), so that every id arrives and
// the socket stays open.
func TestIntegrationAckBatching(t *testing.T) {
	var mu sync.Mutex
	var got []string
	maxBatch := 0
	reg := gateway.NewRegistry()
	require.NoError(t, reg.HandleAck(func(_ context.Context, _ gateway.Call, ids []string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ids...)
		maxBatch = max(maxBatch, len(ids))
	}))
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg})
	s := notifSock(t, n, FormatBinary, newDevice(t), DialOptions{})
	const total = 150
	for i := 0; i < total; i++ {
		require.NoError(t, s.AckNotifications(fmt.Sprintf("item-%d", i)))
	}
	waitUntil(t, "every ack", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == total
	})
	mu.Lock()
	assert.LessOrEqual(t, maxBatch, maxAckIDs)
	mu.Unlock()
	_, err := s.Ping(testCtx(t))
	require.NoError(t, err, "the socket is still open")
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.AckNotifications("late"), ErrClosed)
}

// TestIntegrationPresenceFollow: a follower is pushed the presence
// changes of the users it follows.
func TestIntegrationPresenceFollow(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			ctx := testCtx(t)
			alice := notifSock(t, n, f, newDevice(t), DialOptions{})
			bob := notifSock(t, n, f, newDevice(t), DialOptions{})
			aliceID := alice.Welcome().GetUserId()
			ps, err := bob.FollowPresence(ctx, aliceID)
			if CodeOf(err) == CodeUnknownRPC {
				t.Skip("presence.follow not registered by this server")
			}
			require.NoError(t, err)
			require.Len(t, ps, 1)
			assert.Equal(t, aliceID, ps[0].GetUserId())
			assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_ONLINE, ps[0].GetState())

			_, err = alice.SetStatus(ctx, true, "ranked match")
			require.NoError(t, err)
			p := nextPush(t, bob)
			pres, err := bob.DecodePresence(p)
			require.NoError(t, err)
			assert.Equal(t, aliceID, pres.GetUserId())
			assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_PLAYING, pres.GetState())
			assert.Equal(t, "ranked match", pres.GetActivity())

			require.NoError(t, bob.UnfollowPresence(ctx, aliceID))
			_, err = alice.SetStatus(ctx, false, "")
			require.NoError(t, err)
			noNote(t, bob)
			_, err = bob.FollowPresence(ctx)
			assert.Error(t, err, "no users")
		})
	}
}

// TestIntegrationNotifyAcksSurviveReconnect: ids acknowledged while the
// socket is reconnecting go out on the next connection.
func TestIntegrationNotifyAcksSurviveReconnect(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	s := notifSock(t, n, FormatBinary, newDevice(t), DialOptions{AutoReconnect: true, Backoff: Backoff{Min: 300 * time.Millisecond, Max: 300 * time.Millisecond}})
	user := s.Welcome().GetUserId()
	require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "late-ack", user))
	assert.Equal(t, "late-ack", nextNote(t, s).GetId())
	dropConn(t, s)
	require.NoError(t, s.AckNotifications("late-ack"))
	require.Equal(t, EventResumed, nextEvent(t, s, EventResumed, EventReset).Kind)
	waitUntil(t, "the ack sent after reconnecting", func() bool { return len(inboxIDs(t, s)) == 0 })
	noNote(t, s)
}

// TestIntegrationNotifyOnPushesByDefault: without
// DialOptions.Notifications, notifications stay on Pushes, where
// DecodeNotification reads them in either format, and Notifications only
// closes when the socket ends.
func TestIntegrationNotifyOnPushesByDefault(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			s := loginSock(t, newTestClient(t, n, WithFormat(f)), DeviceCredential(newDevice(t), true), DialOptions{})
			user := s.Welcome().GetUserId()
			require.Equal(t, adminv1.SendOutcome_SEND_OUTCOME_DELIVERED, sendNote(t, n, apiv1.NotifyMode_NOTIFY_MODE_STORED, "plain", user))
			p := nextPush(t, s)
			assert.Equal(t, PushKindNotification, p.GetKind())
			assert.Equal(t, "plain", p.GetId())
			note, err := s.DecodeNotification(p)
			require.NoError(t, err)
			assert.Equal(t, "plain", note.GetId())
			assert.JSONEq(t, `{"coins":5}`, string(note.GetContent()))
			_, err = s.DecodePresence(p)
			assert.Error(t, err, "not a presence push")
			select {
			case note := <-s.Notifications():
				t.Fatalf("notification %v without DialOptions.Notifications", note)
			default:
			}
			require.NoError(t, s.Close())
			_, ok := <-s.Notifications()
			assert.False(t, ok, "closed with the socket")
		})
	}
}
