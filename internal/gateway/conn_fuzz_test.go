package gateway

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/wire"
)

// discardConn is a socket that accepts every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) Read([]byte) (int, error)         { return 0, errors.New("not readable") }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// refuseAuth rejects every credential.
type refuseAuth struct{}

func (refuseAuth) Authenticate(context.Context, *apiv1.AuthenticateRequest, string) (*apiv1.AuthenticateResponse, error) {
	return nil, errors.New("no")
}
func (refuseAuth) VerifyToken(string) (Identity, error) { return Identity{}, errors.New("no") }

// FuzzConnOnData feeds arbitrary bytes, in arbitrary chunks, to a socket
// before and after authentication: whatever arrives, the gateway must not
// panic, and a socket it stopped reading must stay stopped.
func FuzzConnOnData(f *testing.F) {
	hello, _ := wire.Marshal(wire.Binary, nil, &realtimev1.ClientFrame{Cid: 1, Body: &realtimev1.ClientFrame_Hello{Hello: &realtimev1.Hello{Auth: &realtimev1.Hello_Token{Token: "t"}}}})
	rpc, _ := wire.Marshal(wire.Binary, nil, &realtimev1.ClientFrame{Cid: 2, Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "taisen.echo", Payload: []byte("x")}}})
	f.Add(benchFrame(hello), uint8(3), false)
	f.Add(append(benchFrame(rpc), benchFrame(rpc)...), uint8(1), true)
	f.Add([]byte{0x02, 0x83, 1, 2, 3, 4, 'a', 'b', 'c', 0x80, 0x81, 1, 2, 3, 4, 'd'}, uint8(5), true)
	f.Add([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}, uint8(0), true)
	send, _ := wire.Marshal(wire.Binary, nil, &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Send{Send: &realtimev1.Send{Name: "room.input", Payload: []byte("x")}}})
	ack, _ := wire.Marshal(wire.Binary, nil, &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ack{Ack: &realtimev1.Ack{Ids: []string{"a", ""}}}})
	f.Add(append(benchFrame(send), benchFrame(ack)...), uint8(2), true)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, open bool) {
		g, err := New(Config{NodeID: "fuzz", Engine: "goroutine", RateLimit: 1e6, RateBurst: 1e6, MaxViolations: 1 << 14},
			Deps{Bus: nilBus{}, Auth: refuseAuth{}})
		if err != nil {
			t.Fatal(err)
		}
		g.baseCtx, g.cancel = context.WithCancel(context.Background())
		g.kv = downKV{}
		defer func() {
			// Every request goroutine the input started ends with the
			// gateway: none may outlive it.
			g.cancel()
			g.wg.Wait()
		}()
		c := g.newConn(discardConn{}, wire.Binary)
		if open {
			c.state = stateOpen
			c.sess = &Session{id: "s", userID: "u", state: sessLive}
		}
		step := int(chunk%16) + 1
		for len(data) > 0 {
			n := min(step, len(data))
			if !c.onData(append([]byte(nil), data[:n]...)) {
				break
			}
			data = data[n:]
		}
		if len(data) == 0 {
			return // still reading: nothing more to check
		}
		// The socket was stopped: it must be closing, and stay stopped
		// whatever else arrives, valid frames included.
		c.mu.Lock()
		st := c.state
		c.mu.Unlock()
		if st < stateClosing {
			t.Fatalf("onData stopped reading a socket in state %d", st)
		}
		c.mu.Lock()
		inflightBefore := len(c.inflight)
		c.mu.Unlock()
		if c.onData(benchFrame(rpc)) {
			t.Fatal("a stopped socket accepted more input")
		}
		c.mu.Lock()
		inflightAfter := len(c.inflight)
		c.mu.Unlock()
		if inflightAfter > inflightBefore {
			t.Fatal("a stopped socket started a request")
		}
	})
}

// nilBus is a bus the fuzzed paths never reach.
type nilBus struct{ bus.Bus }

// downKV is a key-value bucket whose server is down.
type downKV struct{}

var errDown = errors.New("kv down")

func (downKV) Get(context.Context, string) (bus.Entry, error) { return bus.Entry{}, errDown }
func (downKV) Put(context.Context, string, []byte, time.Duration) (uint64, error) {
	return 0, errDown
}
func (downKV) Create(context.Context, string, []byte, time.Duration) (uint64, error) {
	return 0, errDown
}
func (downKV) Update(context.Context, string, []byte, uint64, time.Duration) (uint64, error) {
	return 0, errDown
}
func (downKV) Delete(context.Context, string, uint64) error { return errDown }
