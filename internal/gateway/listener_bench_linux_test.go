package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/bus/natsbus"
)

// BenchmarkUpgrade opens a WebSocket (upgrade request, 101 answer, the
// socket handed to the epoll engine) and closes it, served by net/http
// (ServeMux, ServeHTTP, hijack) or through the Listener. Client and server
// share the process, so the difference between the two is the server's;
// cpu-ns/op is the process's CPU time (user and system) per socket.
func BenchmarkUpgrade(b *testing.B) {
	srv, err := natsbus.StartServer(context.Background(), natsbus.ServerConfig{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	bs, err := natsbus.Connect(context.Background(), natsbus.Config{Server: srv, Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	g, err := New(Config{NodeID: "bench", MaxUnauthSockets: 1 << 20, MaxUnauthPerIP: 1 << 20}, Deps{Bus: bs, Auth: userIsToken{}})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	head := "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUser-Agent: bench\r\n\r\n"
	for _, fast := range []bool{false, true} {
		name := "net-http"
		if fast {
			name = "listener"
		}
		b.Run(name, func(b *testing.B) {
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = tcp
			if fast {
				ln = g.Listen(tcp, ListenerConfig{Path: "/ws", ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 32 << 10})
			}
			mux := http.NewServeMux()
			mux.Handle("GET /ws", g)
			hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 32 << 10}
			go func() { _ = hs.Serve(ln) }()
			defer hs.Close()
			addr := tcp.Addr().String()
			buf := make([]byte, 4096)
			cpu0 := processCPU()
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.WriteString(c, head); err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReaderSize(c, len(buf))
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 101") {
					b.Fatalf("%q %v", line, err)
				}
				c.Close()
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time the process used so far, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
