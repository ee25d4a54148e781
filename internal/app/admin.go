package app

import (
	"context"
	"crypto/subtle"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	"github.com/taisen-dev/taisen/internal/auth"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// access is an admin route's authentication rule. The zero value requires
// the server key, so a route nobody decided about is closed.
type access uint8

const (
	keyRequired access = iota
	open
)

// adminRoute is one pattern of the admin listener and who may call it.
type adminRoute struct {
	pattern string
	access  access
	handler http.Handler
}

// compressMinBytes: replies smaller than this are not compressed (gzip
// costs more CPU than it saves on a few hundred bytes).
const compressMinBytes = 1024

// adminRoutes is every route of the admin listener with a deliberate
// decision: health and readiness are open (probes carry no key), /metrics
// is open for scrapers unless --metrics-auth, pprof exists only with
// --pprof and needs the key (its cmdline shows the process arguments), and
// the server-to-server API needs the key.
func (a *App) adminRoutes() []adminRoute {
	metrics := open
	if a.cfg.MetricsAuth {
		metrics = keyRequired
	}
	routes := []adminRoute{
		{"GET /healthz", open, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })},
		{"GET /readyz", open, http.HandlerFunc(a.readyz)},
		{"GET /metrics", metrics, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})},
	}
	path, h := adminv1connect.NewSessionServiceHandler(gateway.NewAdminHandler(a.gw),
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithReadMaxBytes(a.cfg.Gateway.MaxFrameBytes+4096)) // a push payload plus its envelope
	routes = append(routes, adminRoute{path, keyRequired, h})
	path, h = a.nodes.Handler()
	routes = append(routes, adminRoute{path, keyRequired, h})
	path, h = auth.AdminHTTPHandler(a.auth)
	routes = append(routes, adminRoute{path, keyRequired, h})
	if n := a.notify.Load(); n != nil {
		path, h = n.Handler(connect.WithCompressMinBytes(compressMinBytes), connect.WithReadMaxBytes(4<<20))
		routes = append(routes, adminRoute{path, keyRequired, h})
	}
	if m := a.rooms.Load(); m != nil {
		path, h = m.Handler(connect.WithCompressMinBytes(compressMinBytes), connect.WithReadMaxBytes(1<<20))
		routes = append(routes, adminRoute{path, keyRequired, h})
	}
	if a.cfg.Pprof {
		routes = append(routes,
			adminRoute{"/debug/pprof/", keyRequired, http.HandlerFunc(pprof.Index)},
			adminRoute{"/debug/pprof/cmdline", keyRequired, http.HandlerFunc(pprof.Cmdline)},
			adminRoute{"/debug/pprof/profile", keyRequired, http.HandlerFunc(pprof.Profile)},
			adminRoute{"/debug/pprof/symbol", keyRequired, http.HandlerFunc(pprof.Symbol)},
			adminRoute{"/debug/pprof/trace", keyRequired, http.HandlerFunc(pprof.Trace)},
		)
	}
	return routes
}

// adminServer is the admin listener's server: no write timeout (a CPU
// profile or trace streams for as long as asked), bounded request reads.
func (a *App) adminServer() *http.Server {
	return &http.Server{
		Handler:           newAdminHandler(a.adminRoutes(), a.serverKey),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// adminHandler is the one authentication check in front of the whole
// admin mux: it finds the route a request would reach and, unless that
// route is open, admits only callers bearing the server key. Paths that
// match no route need the key too, then get the mux's 404 (or 405).
type adminHandler struct {
	mux    *http.ServeMux
	public map[string]bool // patterns anyone may call
	want   []byte
}

func newAdminHandler(routes []adminRoute, serverKey string) *adminHandler {
	h := &adminHandler{mux: http.NewServeMux(), public: map[string]bool{}, want: []byte("Bearer " + serverKey)}
	for _, rt := range routes {
		h.mux.Handle(rt.pattern, rt.handler)
		if rt.access == open {
			h.public[rt.pattern] = true
		}
	}
	return h
}

func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); !h.public[pattern] && !h.hasKey(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":"unauthenticated","message":"send the server key as Authorization: Bearer <key>"}`)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *adminHandler) hasKey(r *http.Request) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), h.want) == 1
}

// readyz is ready when the listeners serve, bus and store answer, and the
// node is not draining. It is open, so it names the failed checks only
// ("bus", "store", "draining", "listeners"); the details go to the log.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	var failed []string
	if !a.ready.Load() {
		failed = append(failed, "listeners")
	}
	if a.gw.Draining() {
		failed = append(failed, "draining")
	}
	if err := a.gw.Healthy(); err != nil {
		failed = append(failed, "gateway")
		a.log.Warn("not ready: gateway", "err", err)
	}
	// Both pings run at once, each with its own time, so a hanging bus
	// does not make the store look down too.
	pings := []struct {
		name string
		ping func(context.Context) error
		err  error
	}{{name: "bus", ping: a.bus.Ping}, {name: "store", ping: a.store.Ping}}
	var wg sync.WaitGroup
	for i := range pings {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			pings[i].err = pings[i].ping(ctx)
		})
	}
	wg.Wait()
	for _, p := range pings {
		if p.err != nil {
			failed = append(failed, p.name)
			a.log.Warn("not ready: "+p.name+" ping failed", "err", p.err)
		}
	}
	if len(failed) > 0 {
		http.Error(w, "not ready: "+strings.Join(failed, ", "), http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}
