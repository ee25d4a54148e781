package loadtest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/taisentest"
)

// phaseWatcher collects progress lines and closes seen when a line names
// the phase.
type phaseWatcher struct {
	phase string
	mu    sync.Mutex
	buf   bytes.Buffer
	seen  chan struct{}
}

func (w *phaseWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(string(p), " "+w.phase+" ") {
		select {
		case <-w.seen:
		default:
			close(w.seen)
		}
	}
	return len(p), nil
}

func (w *phaseWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// An idle run with topics and follows: while it holds, the node lists the
// run's topics with their subscribers, an item published to one reaches
// exactly its subscribers, the users read playing, and a user's departure
// reaches exactly its followers; the report counts what the setup did and
// the topics are gone afterwards.
func TestRunIdleTopicsAndFollows(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	const sessions, perSession, topics, follows = 30, 2, 3, 2
	cfg := Config{Target: n.ClientURL, AdminURL: n.AdminURL, ServerKey: n.ServerKey, Scenario: ScenarioIdle, Sessions: sessions,
		TopicsPerSession: perSession, Topics: topics, Follows: follows, Duration: 3 * time.Second, Settle: 500 * time.Millisecond,
		RunID: "idle-it", MaxRunTime: time.Minute}
	progress := &phaseWatcher{phase: "hold", seen: make(chan struct{})}
	type result struct {
		r   *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := Run(context.Background(), cfg, progress)
		done <- result{r, err}
	}()
	select {
	case <-progress.seen:
	case res := <-done:
		t.Fatalf("the run ended before holding: %v\n%s", res.err, progress.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no hold within 30s:\n%s", progress.String())
	}

	ctx := context.Background()
	adm, ahc := newAdmin(cfg)
	defer ahc.CloseIdleConnections()
	// Session i subscribed to topics (i+j) mod 3, j < 2: 20 per topic.
	listed, err := adm.ListTopics(ctx, connect.NewRequest(&adminv1.ListTopicsRequest{Limit: 100}))
	require.NoError(t, err)
	var names []string
	for _, tp := range listed.Msg.GetTopics() {
		names = append(names, tp.GetName())
		assert.True(t, tp.GetClientsMaySubscribe(), tp.GetName())
		assert.Equal(t, uint32(sessions*perSession/topics), tp.GetSubscribers(), tp.GetName())
	}
	require.Len(t, names, topics)
	_, err = adm.Publish(ctx, connect.NewRequest(&adminv1.PublishRequest{Topic: names[0], Id: "idle-it-item", Subject: "test"}))
	require.NoError(t, err)

	// The user of session 0 reads playing, then leaves: sessions 28 and 29
	// follow it.
	cl, err := client.New(n.ClientURL)
	require.NoError(t, err)
	auth, err := cl.AuthenticateDevice(ctx, DeviceID(cfg.RunID, 0), false)
	require.NoError(t, err)
	user0 := auth.GetSession().GetUserId()
	pres, err := adm.GetPresence(ctx, connect.NewRequest(&adminv1.GetPresenceRequest{UserIds: []string{user0}}))
	require.NoError(t, err)
	require.Len(t, pres.Msg.GetPresences(), 1)
	assert.Equal(t, apiv1.PresenceState_PRESENCE_STATE_PLAYING, pres.Msg.GetPresences()[0].GetState())
	assert.Equal(t, IdleActivity, pres.Msg.GetPresences()[0].GetActivity())
	kicked, err := n.Disconnect(ctx, user0)
	require.NoError(t, err)
	require.True(t, kicked)

	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the run did not end:\n%s", progress.String())
	}
	require.NoError(t, res.err, "progress:\n%s", progress.String())
	r := res.r
	t.Logf("progress:\n%s\nsummary:\n%s", progress.String(), r.Summary())
	require.NotNil(t, r.TopicSubscriptions)
	assert.Equal(t, int64(topics), *r.TopicsCreated)
	assert.Equal(t, int64(sessions*perSession), *r.TopicSubscriptions)
	assert.Equal(t, int64(sessions), *r.StatusesSet)
	assert.Equal(t, int64(sessions*follows), *r.Follows)
	assert.Equal(t, map[string]int64{"notify": sessions * perSession / topics, "presence": follows}, r.PushesReceived)
	// The kicked session is the run's only error.
	assert.Equal(t, sessions-1, r.SessionsOK)
	assert.Equal(t, 1, r.Errors, "errors: %v %v", r.ErrorsByKind, r.ErrorSamples)
	assert.Equal(t, map[string]int{"hold_closed_kicked": 1}, r.ErrorsByKind)
	assert.Contains(t, r.Summary(), "setup: 3 topics created, 60 topic subscriptions, 30 statuses set, 60 follows; pushes received: 20 notify, 2 presence")

	listed, err = adm.ListTopics(ctx, connect.NewRequest(&adminv1.ListTopicsRequest{Limit: 100}))
	require.NoError(t, err)
	assert.Empty(t, listed.Msg.GetTopics(), "the run deletes its topics")
	require.Eventually(t, func() bool { return n.Gateway().Stats().Sessions == 0 }, 5*time.Second, 50*time.Millisecond)
}

// Without the server key the run stops before connecting and says why.
func TestRunIdleTopicsWrongKey(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	r, err := Run(context.Background(), Config{Target: n.ClientURL, AdminURL: n.AdminURL, ServerKey: "not-the-server-key-0123",
		Scenario: ScenarioIdle, Sessions: 5, TopicsPerSession: 1}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the node refused the server key")
	require.NotNil(t, r)
	assert.Contains(t, r.Aborted, "refused the server key")
	assert.Zero(t, r.SessionsOK)
	assert.Zero(t, n.Gateway().Stats().Sessions)
}
