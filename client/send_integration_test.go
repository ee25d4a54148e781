package client

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/taisentest"
)

// TestIntegrationSendAckEphemeral: fire-and-forget messages and acks reach
// their handlers, ephemeral messages reach Ephemerals, in both formats.
func TestIntegrationSendAckEphemeral(t *testing.T) {
	inputs := make(chan string, 10)
	acks := make(chan []string, 10)
	reg := gateway.NewRegistry()
	require.NoError(t, reg.RegisterMessage("test.input", func(_ context.Context, c gateway.Call) { inputs <- string(c.Payload) }))
	require.NoError(t, reg.HandleAck(func(_ context.Context, _ gateway.Call, ids []string) { acks <- ids }))
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg})
	for _, f := range []Format{FormatBinary, FormatJSON} {
		c := newTestClient(t, n, WithFormat(f))
		sess := login(t, c)
		s := dial(t, c, DialOptions{Session: sess})

		require.NoError(t, s.Send("test.input", []byte("left")))
		require.NoError(t, s.Send("test.input", []byte("jump")))
		for _, want := range []string{"left", "jump"} {
			select {
			case got := <-inputs:
				require.Equal(t, want, got)
			case <-time.After(5 * time.Second):
				t.Fatalf("format %v: input %q never arrived", f, want)
			}
		}

		_, err := n.Gateway().Send(testCtx(t), sess.GetUserId(), gateway.Message{Kind: "room.state", Payload: []byte("s1"), Ephemeral: true})
		require.NoError(t, err)
		select {
		case e := <-s.Ephemerals():
			require.Equal(t, "room.state", e.GetKind())
			require.Equal(t, []byte("s1"), e.GetPayload())
		case <-time.After(5 * time.Second):
			t.Fatalf("format %v: no ephemeral message", f)
		}

		_, err = n.Gateway().Send(testCtx(t), sess.GetUserId(), gateway.Message{Kind: "inbox", Payload: []byte("gift"), ID: "gift-7"})
		require.NoError(t, err)
		p := nextPush(t, s)
		require.Equal(t, "gift-7", p.GetId())
		require.NoError(t, s.Ack(p.GetId()))
		select {
		case ids := <-acks:
			require.Equal(t, []string{"gift-7"}, ids)
		case <-time.After(5 * time.Second):
			t.Fatalf("format %v: ack never arrived", f)
		}
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Send("test.input", nil), ErrClosed)
	}
}
