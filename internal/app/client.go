package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/auth"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// maxHeaderBytes bounds a request's header block on both listeners (a
// session token in /ws?token= is well under 1 KiB; Go's default is 1 MiB).
const maxHeaderBytes = 32 << 10

// clientServer is the client listener's server. --http-timeout bounds
// reading a request and writing its reply, so a client trickling a body
// cannot hold a goroutine; net/http clears those deadlines when /ws
// hijacks the connection, so upgraded WebSockets live by the gateway's
// own timers. Most upgrades never reach it: see clientListener.
func (a *App) clientServer() *http.Server {
	t := a.cfg.HTTPTimeout
	return &http.Server{
		Handler:           a.clientMux(),
		ReadHeaderTimeout: a.clientReadHeaderTimeout(),
		ReadTimeout:       t,
		WriteTimeout:      t,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// clientReadHeaderTimeout bounds reading a request head on the client
// listener, in net/http and in the gateway's WebSocket fast path.
func (a *App) clientReadHeaderTimeout() time.Duration {
	return min(10*time.Second, a.cfg.HTTPTimeout)
}

// wsPath is the WebSocket endpoint.
const wsPath = "/ws"

// clientListener puts the gateway's WebSocket fast path in front of the
// client server: a plain upgrade of /ws is served without net/http, every
// other request reaches the server unchanged. A TLS listener is left as it
// is (its sockets take the goroutine engine and the net/http path).
func (a *App) clientListener(ln net.Listener) net.Listener {
	if a.cfg.TLSCert != "" {
		return ln
	}
	return a.gw.Listen(ln, gateway.ListenerConfig{Path: wsPath, ReadHeaderTimeout: a.clientReadHeaderTimeout(), MaxHeaderBytes: maxHeaderBytes})
}

func (a *App) clientMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+wsPath, a.gw)
	path, h := auth.HTTPHandler(a.auth, connect.WithCompressMinBytes(compressMinBytes))
	mux.Handle(path, h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return newCORS(a.cfg.CORSOrigins, limitBody(int64(a.cfg.MaxBodyBytes), mux))
}

// limitBody answers 413 to a request whose declared body is larger than
// max and cuts off one that turns out larger while being read.
func limitBody(max int64, next http.Handler) http.Handler {
	msg := fmt.Sprintf(`{"code":"invalid_argument","message":"request body larger than %d bytes"}`, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(apierr.CodeHeader, apierr.CodeName(realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST))
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = io.WriteString(w, msg)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}
