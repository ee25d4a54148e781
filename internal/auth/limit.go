package auth

import (
	"context"
	"net/netip"
	"runtime"
	"sync"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// DefaultPasswordLoginsPerIP bounds the password logins of one client
// address when Config.PasswordLoginsPerIP is 0: a few slots, not the
// hasher.
const DefaultPasswordLoginsPerIP = 4

// defaultPasswordLogins bounds all password logins when
// Config.PasswordLogins is 0: four per default hasher slot, enough queue
// to keep the hasher busy, little enough that a waiting login is answered
// within a few hash times.
func defaultPasswordLogins() int { return 4 * runtime.GOMAXPROCS(0) }

// RetryAfterSeconds is what a BUSY answer asks the client to wait.
const RetryAfterSeconds = 1

type clientIPKey struct{}

// WithClientIP returns ctx carrying the address of the client a request
// comes from, for the per-address limits. The HTTP handler sets it; other
// callers of Service.Authenticate (the socket's Hello) should too.
func WithClientIP(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip.Unmap())
}

// ClientIP returns the address WithClientIP put in ctx, or the zero Addr.
func ClientIP(ctx context.Context) netip.Addr {
	ip, _ := ctx.Value(clientIPKey{}).(netip.Addr)
	return ip
}

// loginLimiter counts the password logins in progress (waiting for the
// hasher or hashing), in all and per client address. It never waits:
// acquire fails at once when a bound is reached.
type loginLimiter struct {
	max, maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newLoginLimiter(maxTotal, maxPerIP int) *loginLimiter {
	return &loginLimiter{max: maxTotal, maxPerIP: maxPerIP, perIP: map[netip.Addr]int{}}
}

// acquire takes a slot for a login from ip (the zero Addr when unknown:
// then only the global bound applies) and returns the function that gives
// it back, or a BUSY error.
func (l *loginLimiter) acquire(ip netip.Addr) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return nil, errBusy("too many password logins in progress; retry shortly")
	}
	if ip.IsValid() {
		if l.perIP[ip] >= l.maxPerIP {
			return nil, errBusy("too many password logins in progress from your address; retry shortly")
		}
		l.perIP[ip]++
	}
	l.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if ip.IsValid() {
				if l.perIP[ip]--; l.perIP[ip] <= 0 {
					delete(l.perIP, ip)
				}
			}
		})
	}, nil
}

func errBusy(msg string) error {
	return apierr.New(realtimev1.ErrorCode_ERROR_CODE_BUSY, msg)
}
