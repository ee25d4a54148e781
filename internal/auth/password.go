package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id cost parameters of new password hashes.
// Stored hashes carry their own parameters, so changing these only affects
// hashes made from then on.
type PasswordParams struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Iterations is the number of passes over the memory.
	Iterations uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen is the length of the random salt in bytes.
	SaltLen uint32
	// KeyLen is the length of the derived key in bytes.
	KeyLen uint32
}

// DefaultPasswordParams returns the OWASP-recommended argon2id parameters:
// 19 MiB of memory, 2 iterations, 1 thread, a 16-byte salt and a 32-byte
// key.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Memory: 19456, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Sanity limits on parameters, for configuration and for stored hashes
// alike: a corrupt or hostile stored hash must not make a login allocate
// unbounded memory or spin for minutes.
const (
	maxMemoryKiB  = 4 << 20 // 4 GiB
	maxIterations = 1024
	minSaltLen    = 8
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 128
	// maxPHCLen bounds the encoded string; the longest valid one is about
	// 300 bytes.
	maxPHCLen = 512
)

// ErrMalformedHash is wrapped by the error Hasher.Verify returns when the
// stored hash is not an argon2id PHC string this package can verify.
var ErrMalformedHash = errors.New("auth: malformed password hash")

// Validate reports whether p can be used to hash passwords.
func (p PasswordParams) Validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("auth: password params: threads must be at least 1")
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("auth: password params: iterations must be 1-%d", maxIterations)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("auth: password params: memory must be 8*threads-%d KiB", maxMemoryKiB)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("auth: password params: salt length must be %d-%d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("auth: password params: key length must be %d-%d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// Hasher hashes and verifies passwords with argon2id. At most a fixed
// number of hashes run at once (each one holds Memory KiB), so a storm of
// email logins queues instead of exhausting memory. A Hasher is safe for
// concurrent use.
type Hasher struct {
	params PasswordParams
	sem    chan struct{}
	// dummy is the hash of a random password under params, verified
	// instead of a real hash when an email is unknown so that the answer
	// takes as long as a wrong password.
	dummy string
}

// NewHasher returns a Hasher making new hashes with params and running at
// most maxConcurrent hashes at once (runtime.GOMAXPROCS(0) when
// maxConcurrent <= 0). It computes one hash up front for VerifyDummy.
func NewHasher(params PasswordParams, maxConcurrent int) (*Hasher, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: params, sem: make(chan struct{}, maxConcurrent)}
	h.dummy = h.hash(rand.Text())
	return h, nil
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() PasswordParams { return h.params }

// Hash returns the PHC string of password under the Hasher's parameters
// with a fresh random salt. It waits for a free slot first and returns
// ctx's error if ctx ends while waiting.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hash(password), nil
}

// hash computes the PHC string of password with a fresh random salt,
// without taking a slot.
func (h *Hasher) hash(password string) string {
	p := h.params
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt) // never fails (crypto/rand crashes the program instead)
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Threads, p.KeyLen)
	return encodePHC(p, salt, key)
}

// Verify reports whether password matches the PHC string phc, using the
// parameters stored in phc rather than the Hasher's, so hashes made under
// older parameters keep working. It returns an error wrapping
// ErrMalformedHash when phc cannot be parsed, and ctx's error if ctx ends
// while waiting for a slot.
func (h *Hasher) Verify(ctx context.Context, phc, password string) (bool, error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyDummy does the work of Verify against a hash no password matches.
// Callers use it when the account is unknown, so that "unknown email"
// costs the same time as "wrong password". It returns only ctx's error.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, err := h.Verify(ctx, h.dummy, password)
	return err
}

func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auth: waiting to hash: %w", err)
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting to hash: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// encodePHC formats $argon2id$v=19$m=<KiB>,t=<iters>,p=<threads>$<salt>$<key>
// with unpadded standard base64.
func encodePHC(p PasswordParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key))
}

// parsePHC parses the strict canonical form encodePHC writes: decimal
// numbers without sign or leading zeros, parameters in the order m, t, p,
// unpadded canonical base64. It returns the parameters with SaltLen and
// KeyLen taken from the decoded salt and key.
func parsePHC(s string) (p PasswordParams, salt, key []byte, err error) {
	bad := func(why string) (PasswordParams, []byte, []byte, error) {
		return PasswordParams{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	if len(s) > maxPHCLen {
		return bad("too long")
	}
	fields := strings.Split(s, "$")
	if len(fields) != 6 || fields[0] != "" {
		return bad("want $argon2id$v=..$m=..,t=..,p=..$salt$hash")
	}
	if fields[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	v, ok := cutNumber(fields[2], "v=")
	if !ok || v != argon2.Version {
		return bad("unsupported version")
	}
	ps := strings.Split(fields[3], ",")
	if len(ps) != 3 {
		return bad("want parameters m, t, p")
	}
	m, okM := cutNumber(ps[0], "m=")
	t, okT := cutNumber(ps[1], "t=")
	th, okP := cutNumber(ps[2], "p=")
	if !okM || !okT || !okP || th > 255 {
		return bad("bad parameters")
	}
	if salt, err = decodeB64(fields[4]); err != nil {
		return bad("bad salt encoding")
	}
	if key, err = decodeB64(fields[5]); err != nil {
		return bad("bad hash encoding")
	}
	p = PasswordParams{
		Memory: m, Iterations: t, Threads: uint8(th),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
	}
	if err := p.Validate(); err != nil {
		return bad(strings.TrimPrefix(err.Error(), "auth: password params: "))
	}
	return p, salt, key, nil
}

// decodeB64 decodes unpadded standard base64 in canonical form only. The
// decoder alone skips \r and \n, so the result is checked by re-encoding.
func decodeB64(s string) ([]byte, error) {
	enc := base64.RawStdEncoding.Strict()
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if enc.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}

// cutNumber parses "<prefix><decimal uint32>" in canonical form.
func cutNumber(s, prefix string) (uint32, bool) {
	digits, ok := strings.CutPrefix(s, prefix)
	if !ok || digits == "" || len(digits) > 10 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}
