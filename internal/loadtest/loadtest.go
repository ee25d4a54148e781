// Package loadtest is the swarm behind `taisen loadtest`: it signs in and
// connects many sessions to a taisen node through the public Go SDK
// (package client), with the credential in the socket's Hello or over HTTP
// first, holds them or closes them according to a scenario, measures
// login-to-Welcome latency, echo RPC round trips and, through the node's
// admin /metrics, the server's CPU time per login and memory growth per
// held session, and returns a Report.
//
// The notification scenarios drive a node's notification API
// (taisen.admin.v1.NotifyService on the admin listener, with the server
// key) while the sessions read their pushes: fanout publishes topic items
// to subscribed sessions, notify sends per-user CONNECTED notifications,
// inbox delivers STORED and retained items to a login wave, and
// disconnect drops every session at once and watches the node's active
// sessions and the users' presence. Every notification id starts with a
// prefix fresh for the run and carries the item's number (and, for fanout
// and notify, its publish time), so each session counts what it received
// once, duplicates apart, and times each delivery.
//
// A run is bounded in every direction: at most MaxSessions sessions per
// process, at most Concurrency sessions being set up at once, an optional
// start rate, and an overall deadline (ConnectTimeout plus the hold,
// capped by MaxRunTime) after which everything stops. On loopback targets
// sockets are spread over several source addresses so that a large run
// does not run out of ephemeral ports.
package loadtest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/internal/wire"
)

// Run runs the load test cfg describes and returns its report. Progress
// lines (one per second) go to progress, which may be nil. The error is
// for runs that could not start (invalid configuration, unreachable
// metrics) or that ctx canceled; in the latter case the partial report is
// returned too. Failures of individual sessions are counted in the
// report, not returned.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	cfg = cfg.WithDefaults()
	if cfg.RunID == "" {
		var b [4]byte
		_, _ = crand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	if progress == nil {
		progress = io.Discard
	}
	r := &runner{
		cfg:      cfg,
		log:      cfg.Logger,
		progress: progress,
		errs:     make(map[string]int),
		samples:  make(map[string]string),
		held:     make([]*heldSession, cfg.Sessions),
	}
	if cfg.delivery() {
		r.dl = newDelivery(cfg)
	}
	if cfg.idleSetup() {
		r.idle = newIdleState(cfg)
	}
	return r.run(ctx)
}

// heldSession is a session kept open while holding.
type heldSession struct {
	sock *client.Socket
	user string      // the user id of the Welcome
	busy atomic.Bool // an echo RPC is in flight
	rc   *receiver   // reads the pushes in the notification scenarios
}

// runner is the state of one run.
type runner struct {
	cfg      Config
	log      *slog.Logger
	progress io.Writer
	cl       *client.Client
	hc       *http.Client
	metrics  scraper
	sources  []netip.Addr

	phase     atomic.Value // string
	started   atomic.Int64
	connected atomic.Int64
	failed    atomic.Int64
	rpcSent   atomic.Int64

	mu          sync.Mutex
	latencies   []float64         // guarded by mu; ms
	rpcLat      []float64         // guarded by mu; ms
	rpcErrs     int               // guarded by mu
	rpcSkipped  int               // guarded by mu
	errs        map[string]int    // guarded by mu
	samples     map[string]string // guarded by mu
	lastWelcome time.Time         // guarded by mu
	held        []*heldSession    // guarded by mu; by session index

	// dl is the delivery bookkeeping of the notification scenarios (nil
	// in the others), set before any session connects.
	dl *delivery
	// idle is the bookkeeping of the idle scenario's topics and follows
	// (nil without them).
	idle *idleState
	// logoutAfter makes each session log out right after its Welcome (the
	// inbox scenario's account creation); users then holds the user ids
	// by session index, guarded by mu.
	logoutAfter bool
	users       []string
	// extra is appended to the progress lines.
	extra atomic.Value // string
}

func (r *runner) run(parent context.Context) (*Report, error) {
	cfg := r.cfg
	startedAt := time.Now()
	ctx, cancel := context.WithTimeout(parent, cfg.runDeadline())
	defer cancel()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	tr.MaxIdleConns = cfg.Concurrency + 16
	r.hc = &http.Client{Transport: tr, Timeout: cfg.DialTimeout}
	defer tr.CloseIdleConnections()
	cl, err := client.New(cfg.Target, client.WithHTTPClient(r.hc), client.WithLogger(r.log),
		client.WithFormat(cfg.Format), client.WithDialTimeout(cfg.DialTimeout))
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	r.cl = cl
	r.sources = sourceAddrs(cfg.Target, cfg.SourceIPs, r.log)

	r.metrics = scraper{hc: r.hc, adminURL: cfg.AdminURL, key: cfg.ServerKey}

	var baseline serverSample
	if cfg.AdminURL != "" && !cfg.delivery() {
		if baseline, err = r.metrics.scrapeMedian(ctx); err != nil {
			return nil, fmt.Errorf("loadtest: baseline: %w", err)
		}
	}

	r.phase.Store("setup")
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.reportProgress(startedAt, stopProgress)
	}()

	rep := &Report{
		Scenario:       cfg.Scenario,
		Target:         cfg.Target,
		LoginPath:      cfg.LoginPath,
		SessionsTarget: cfg.Sessions,
		StartedAt:      startedAt.UTC(),
		GoVersion:      runtime.Version(),
	}

	if cfg.delivery() {
		return r.runDelivery(parent, ctx, rep, startedAt, stopProgress, progressDone)
	}

	if r.idle != nil {
		if err := r.createTopics(ctx); err != nil {
			if r.idle.ahc != nil {
				r.idle.ahc.CloseIdleConnections()
			}
			err = fmt.Errorf("loadtest: idle: %w", err)
			rep.Aborted = err.Error()
			close(stopProgress)
			<-progressDone
			rep, ferr := r.finish(parent, ctx, rep, 0, startedAt)
			return rep, errors.Join(err, ferr)
		}
	}

	// Connect, between two scrapes of the server's CPU time.
	var cpuBefore serverSample
	if cfg.AdminURL != "" {
		if cpuBefore, err = r.metrics.scrape(ctx); err != nil {
			return nil, fmt.Errorf("loadtest: cpu before connecting: %w", err)
		}
	}
	r.phase.Store("connect")
	connectStart := time.Now()
	notStarted := r.connectAll(ctx)
	if cfg.AdminURL != "" {
		if cpuAfter, err := r.metrics.scrape(ctx); err != nil {
			r.fail("metrics", "scrape", err, 1)
		} else {
			r.mu.Lock()
			welcomed := len(r.latencies)
			r.mu.Unlock()
			rep.setServerCPU(cpuBefore, cpuAfter, welcomed)
		}
	}
	// The pooled HTTP connections of the authentications would otherwise
	// count in the server's footprint while holding.
	r.hc.CloseIdleConnections()
	r.mu.Lock()
	connectEnd := r.lastWelcome
	r.mu.Unlock()
	if connectEnd.IsZero() {
		connectEnd = time.Now()
	}
	rep.ConnectS = round3(connectEnd.Sub(connectStart).Seconds())
	if notStarted > 0 {
		r.fail("connect", "not_started", fmt.Errorf("%d sessions not started: %w", notStarted, ctx.Err()), notStarted)
	}
	if cfg.Follows > 0 && ctx.Err() == nil {
		// Every user id is known now.
		r.followAll(ctx)
	}

	// Hold.
	if cfg.holding() && ctx.Err() == nil {
		r.phase.Store("hold")
		holdStart := time.Now()
		rep.Server = r.hold(ctx, baseline)
		rep.HoldS = round3(time.Since(holdStart).Seconds())
	}

	// Close whatever is held, also after the deadline.
	r.phase.Store("close")
	ok := r.closeAll()
	if !cfg.holding() {
		ok = int(r.connected.Load())
	}
	if r.idle != nil {
		r.idleEnd(ctx, rep)
	}
	close(stopProgress)
	<-progressDone
	return r.finish(parent, ctx, rep, ok, startedAt)
}

// finish completes the report with what every scenario measures and says
// whether the run was canceled or cut short.
func (r *runner) finish(parent, ctx context.Context, rep *Report, ok int, startedAt time.Time) (*Report, error) {
	cfg := r.cfg
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.SessionsOK = ok
	rep.ErrorsByKind = r.errs
	if len(r.samples) > 0 {
		rep.ErrorSamples = r.samples
	}
	for _, n := range r.errs {
		rep.Errors += n
	}
	if rep.ConnectS > 0 {
		rep.ConnectRatePerS = round3(float64(len(r.latencies)) / rep.ConnectS)
	}
	if r.dl != nil && (cfg.Scenario == ScenarioFanout || cfg.Scenario == ScenarioNotify) {
		rep.LoginLatencyMS = ptr(percentiles(r.latencies))
	} else {
		rep.LatencyMS = percentiles(r.latencies)
	}
	rep.RPC = RPCStats{Count: int(r.rpcSent.Load()), Errors: r.rpcErrs, Skipped: r.rpcSkipped, LatencyMS: percentiles(r.rpcLat)}
	rep.DurationS = round3(time.Since(startedAt).Seconds())
	switch {
	case parent.Err() != nil:
		rep.Aborted = "canceled: " + parent.Err().Error()
		fmt.Fprintf(r.progress, "loadtest: canceled after %.1fs\n", rep.DurationS)
		return rep, fmt.Errorf("loadtest: %w", parent.Err())
	case ctx.Err() != nil:
		rep.Aborted = fmt.Sprintf("run deadline of %v reached", cfg.runDeadline())
	}
	fmt.Fprintf(r.progress, "loadtest: done in %.1fs: %d/%d sessions ok, %d errors\n", rep.DurationS, rep.SessionsOK, rep.SessionsTarget, rep.Errors)
	return rep, nil
}

// sourceAddrs returns the loopback source addresses to spread sockets
// over, or nil to let the system choose.
func sourceAddrs(target string, n int, log *slog.Logger) []netip.Addr {
	if n <= 0 {
		return nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil
	}
	host := u.Hostname()
	if host != "localhost" {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() || !ip.IsLoopback() {
			return nil
		}
	}
	// Linux routes all of 127/8 to the loopback interface; other systems
	// may only have 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		log.Info("loadtest: 127.0.0.2 is not usable; sockets use the default source address", "err", err)
		return nil
	}
	_ = ln.Close()
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
	}
	return out
}

// connectAll starts the sessions at the configured rate and concurrency
// and waits for them. It returns how many were never started because the
// connection phase ran out of time.
func (r *runner) connectAll(ctx context.Context) int {
	cfg := r.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for i := range cfg.Sessions {
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return cfg.Sessions - i
				case <-timer.C:
				}
			}
		}
		select {
		case <-ctx.Done():
			return cfg.Sessions - i
		case sem <- struct{}{}:
		}
		r.started.Add(1)
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			r.session(ctx, i)
		}()
	}
	return 0
}

// session signs in and connects session i by the configured login path.
func (r *runner) session(ctx context.Context, i int) {
	start := time.Now()
	opts := client.DialOptions{PushBuffer: 16, ClientVersion: "taisen-loadtest"}
	if r.dl != nil {
		opts.PushBuffer = 256
	}
	if len(r.sources) > 0 {
		opts.LocalAddr = r.sources[i%len(r.sources)]
	}
	var (
		sock *client.Socket
		err  error
	)
	switch r.cfg.LoginPath {
	case LoginPathHTTP:
		auth, aerr := r.cl.AuthenticateDevice(ctx, DeviceID(r.cfg.RunID, i), true)
		if aerr != nil {
			r.fail("auth", errorKind(aerr), aerr, 1)
			return
		}
		opts.Session = auth.GetSession()
		if sock, err = r.cl.Dial(ctx, opts); err != nil {
			r.fail("dial", errorKind(err), err, 1)
			return
		}
	default:
		if sock, err = r.cl.Login(ctx, client.DeviceCredential(DeviceID(r.cfg.RunID, i), true), opts); err != nil {
			r.fail("login", errorKind(err), err, 1)
			return
		}
	}
	now := time.Now()
	lat := float64(now.Sub(start)) / float64(time.Millisecond)
	user := sock.Welcome().GetUserId()
	if r.logoutAfter {
		err := sock.Logout(ctx)
		_ = sock.Close()
		if err != nil {
			r.fail("logout", errorKind(err), err, 1)
			return
		}
	}
	h := &heldSession{sock: sock, user: user}
	if r.dl != nil && !r.logoutAfter {
		h.rc = r.dl.receive(r, i, sock)
	}
	if r.idle != nil {
		r.idleSession(ctx, i, sock)
	}
	r.mu.Lock()
	r.latencies = append(r.latencies, lat)
	if now.After(r.lastWelcome) {
		r.lastWelcome = now
	}
	if r.logoutAfter {
		r.users[i] = user
	} else if r.cfg.holding() {
		r.held[i] = h
	}
	r.mu.Unlock()
	r.connected.Add(1)
	if !r.cfg.holding() {
		_ = sock.Close()
	}
}

// fail counts n failures of a kind in a phase.
func (r *runner) fail(phase, kind string, err error, n int) {
	k := phase + "_" + kind
	r.failed.Add(int64(n))
	r.mu.Lock()
	r.errs[k] += n
	if _, ok := r.samples[k]; !ok {
		r.samples[k] = err.Error()
	}
	r.mu.Unlock()
	r.log.Debug("loadtest: failure", "kind", k, "err", err)
}

// hold keeps the sessions for the hold duration, sending echo RPCs and
// measuring the server, and returns the server stats (nil without
// AdminURL or when the scrapes failed).
func (r *runner) hold(ctx context.Context, baseline serverSample) *ServerStats {
	cfg := r.cfg
	hctx, cancel := context.WithTimeout(ctx, cfg.holdDuration())
	defer cancel()
	var wg sync.WaitGroup
	if cfg.RPCRate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.rpcLoop(hctx, ctx)
		}()
	}
	var stats *ServerStats
	if cfg.AdminURL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(cfg.Settle)
			defer t.Stop()
			select {
			case <-hctx.Done():
				return
			case <-t.C:
			}
			held, err := r.metrics.scrapeMedian(hctx)
			if err != nil {
				r.fail("metrics", "scrape", err, 1)
				return
			}
			stats = newServerStats(baseline, held, r.alive())
		}()
	}
	<-hctx.Done()
	wg.Wait()
	return stats
}

// alive counts the held sessions still connected.
func (r *runner) alive() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, h := range r.held {
		if h != nil && h.sock.Err() == nil {
			n++
		}
	}
	return n
}

// rpcLoop sends echo RPCs at RPCRate from random idle held sessions until
// hctx ends, and waits for those in flight (bounded by ctx).
func (r *runner) rpcLoop(hctx, ctx context.Context) {
	cfg := r.cfg
	payload := make([]byte, cfg.RPCPayloadBytes)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	r.mu.Lock()
	var pool []*heldSession
	for _, h := range r.held {
		if h != nil {
			pool = append(pool, h)
		}
	}
	r.mu.Unlock()
	if len(pool) == 0 {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	interval := time.Duration(float64(time.Second) / cfg.RPCRate)
	start := time.Now()
	t := time.NewTimer(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-hctx.Done():
			return
		case <-t.C:
		}
		t.Reset(max(time.Until(start.Add(time.Duration(n+1)*interval)), 0))
		h := pickIdle(pool)
		if h == nil {
			r.mu.Lock()
			r.rpcSkipped++
			r.mu.Unlock()
			continue
		}
		r.rpcSent.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.busy.Store(false)
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			t0 := time.Now()
			out, err := h.sock.RPC(rctx, "taisen.echo", payload)
			lat := float64(time.Since(t0)) / float64(time.Millisecond)
			if err == nil && string(out) != string(payload) {
				err = errors.New("echo returned a different payload")
			}
			r.mu.Lock()
			if err != nil {
				r.rpcErrs++
			} else {
				r.rpcLat = append(r.rpcLat, lat)
			}
			r.mu.Unlock()
			if err != nil {
				r.fail("rpc", errorKind(err), err, 1)
			}
		}()
	}
}

// pickIdle picks a random connected session with no RPC in flight and
// marks it busy; nil when a few tries found none.
func pickIdle(pool []*heldSession) *heldSession {
	for range 8 {
		h := pool[rand.IntN(len(pool))]
		if h.sock.Err() == nil && h.busy.CompareAndSwap(false, true) {
			return h
		}
	}
	return nil
}

// closeAll closes the held sessions and returns how many were still
// connected, counting the others as hold failures.
func (r *runner) closeAll() int {
	r.mu.Lock()
	held := make([]*heldSession, 0, len(r.held))
	for _, h := range r.held {
		if h != nil {
			held = append(held, h)
		}
	}
	r.mu.Unlock()
	var ok atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, h := range held {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			if err := h.sock.Err(); err != nil {
				r.fail("hold", errorKind(err), err, 1)
				return
			}
			ok.Add(1)
			_ = h.sock.Close()
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

// reportProgress writes a progress line every second until stop closes.
func (r *runner) reportProgress(start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		conn := r.connected.Load()
		phase, _ := r.phase.Load().(string)
		line := fmt.Sprintf("loadtest: %5.0fs %-7s connected %d/%d  failed %d  rate %d/s",
			time.Since(start).Seconds(), phase, conn, r.cfg.Sessions, r.failed.Load(), conn-prev)
		if n := r.rpcSent.Load(); n > 0 {
			line += fmt.Sprintf("  rpc %d", n)
		}
		if r.dl != nil {
			if x := r.dl.progress(); x != "" {
				line += "  " + x
			}
		}
		if x, _ := r.extra.Load().(string); x != "" {
			line += "  " + x
		}
		fmt.Fprintln(r.progress, line)
		prev = conn
	}
}

// errorKind classifies a session error for the report: the server's
// error code or close reason, or the network condition behind it.
func errorKind(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if c := client.CodeOf(err); c != 0 {
		return client.CodeName(c)
	}
	if reason := client.ReasonOf(err); reason != 0 {
		return "closed_" + wire.ReasonName(reason)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED:
			return "refused"
		case syscall.ECONNRESET, syscall.EPIPE:
			return "reset"
		case syscall.EADDRNOTAVAIL, syscall.EADDRINUSE:
			return "no_source_port"
		case syscall.EMFILE, syscall.ENFILE:
			return "too_many_open_files"
		case syscall.ETIMEDOUT:
			return "timeout"
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	switch {
	case errors.Is(err, client.ErrDisconnected):
		return "disconnected"
	case errors.Is(err, client.ErrClosed):
		return "closed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}

// DeviceID is the device id of session i of a run: "lt-<run id>-<i>", i
// zero-padded to 8 digits so every id meets the server's 10-character
// minimum whatever the run id.
func DeviceID(runID string, i int) string { return fmt.Sprintf("lt-%s-%08d", runID, i) }
