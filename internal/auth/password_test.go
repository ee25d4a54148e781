package auth

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h, err := NewHasher(fastParams, 2)
	if err != nil {
		t.Fatal(err)
	}
	phc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	m := phcPattern.FindStringSubmatch(phc)
	if m == nil {
		t.Fatalf("Hash = %q, want the form $argon2id$v=19$m=..,t=..,p=..$salt$hash", phc)
	}
	if got, want := strings.Join(m[1:], ","), "64,1,1"; got != want {
		t.Errorf("m,t,p = %s, want %s", got, want)
	}
	if strings.Contains(phc, "=$") || strings.HasSuffix(phc, "=") {
		t.Errorf("Hash = %q, want unpadded base64", phc)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{
		{"correct horse", true},
		{"correct horse ", false},
		{"Correct horse", false},
		{"", false},
	} {
		got, err := h.Verify(ctx, phc, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v, nil", tc.password, got, err, tc.want)
		}
	}
	again, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if again == phc {
		t.Errorf("two hashes of one password are equal (%q); want fresh salts", phc)
	}
}

func TestHashDefaultParams(t *testing.T) {
	p := DefaultPasswordParams()
	if want := (PasswordParams{Memory: 19456, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32}); p != want {
		t.Fatalf("DefaultPasswordParams() = %+v, want %+v", p, want)
	}
	h, err := NewHasher(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cap(h.sem), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("default concurrency = %d, want GOMAXPROCS = %d", got, want)
	}
	phc, err := h.Hash(context.Background(), "hunter2hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want the default parameters m=19456,t=2,p=1", phc)
	}
	_, salt, key, err := parsePHC(phc)
	if err != nil || len(salt) != 16 || len(key) != 32 {
		t.Errorf("parsePHC(Hash) = salt %d bytes, key %d bytes, %v; want 16, 32, nil", len(salt), len(key), err)
	}
	if ok, err := h.Verify(context.Background(), phc, "hunter2hunter2"); !ok || err != nil {
		t.Errorf("Verify = %v, %v; want true, nil", ok, err)
	}
}

// A hash keeps verifying after the parameters change: Verify uses the
// parameters stored in the hash.
func TestVerifyUsesStoredParams(t *testing.T) {
	ctx := context.Background()
	oldH, err := NewHasher(fastParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	phc, err := oldH.Hash(ctx, "password1")
	if err != nil {
		t.Fatal(err)
	}
	newH, err := NewHasher(PasswordParams{Memory: 128, Iterations: 2, Threads: 2, SaltLen: 8, KeyLen: 16}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := newH.Verify(ctx, phc, "password1"); !ok || err != nil {
		t.Errorf("Verify of an old-params hash = %v, %v; want true, nil", ok, err)
	}
	newPHC, err := newH.Hash(ctx, "password1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(newPHC, "$argon2id$v=19$m=128,t=2,p=2$") {
		t.Errorf("new Hash = %q, want the new parameters", newPHC)
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	valid := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, _, _, err := parsePHC(valid); err != nil {
		t.Fatalf("parsePHC(valid) = %v; the cases below would prove nothing", err)
	}
	for _, tc := range []struct{ name, phc string }{
		{"empty", ""},
		{"dollar only", "$"},
		{"no leading dollar", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"missing param", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=64,t=1,p=1,k=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"overflow", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"zero iterations", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"zero threads", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"256 threads", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"memory below 8*threads", "$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key},
		{"memory above limit", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"iterations above limit", "$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"url base64", "$argon2id$v=19$m=64,t=1,p=1$c2Fsd_NhbHRzYWx0c2FsdA$" + key},
		{"non-canonical base64", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdB$" + key},
		{"newline in salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNh\nbHRzYWx0c2FsdA$" + key},
		{"carriage return in key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5\ra2U"},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5a2V5"},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"trailing field", valid + "$"},
		{"too long", valid + strings.Repeat("A", maxPHCLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHasher(fastParams, 1)
			if err != nil {
				t.Fatal(err)
			}
			ok, err := h.Verify(context.Background(), tc.phc, "password")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", tc.phc, ok, err)
			}
		})
	}
}

func TestPasswordParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       PasswordParams
		wantErr string
	}{
		{"default", DefaultPasswordParams(), ""},
		{"fast", fastParams, ""},
		{"zero", PasswordParams{}, "threads must be at least 1"},
		{"no iterations", PasswordParams{Memory: 64, Threads: 1, SaltLen: 16, KeyLen: 32}, "iterations must be 1-1024"},
		{"too little memory", PasswordParams{Memory: 15, Iterations: 1, Threads: 2, SaltLen: 16, KeyLen: 32}, "memory must be 8*threads-4194304 KiB"},
		{"too much memory", PasswordParams{Memory: 8 << 20, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, "memory must be 8*threads-4194304 KiB"},
		{"short salt", PasswordParams{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 4, KeyLen: 32}, "salt length must be 8-64 bytes"},
		{"short key", PasswordParams{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 8}, "key length must be 16-128 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			got := ""
			if err != nil {
				got = strings.TrimPrefix(err.Error(), "auth: password params: ")
			}
			if got != tc.wantErr {
				t.Errorf("Validate() = %q, want %q", got, tc.wantErr)
			}
			if _, err := NewHasher(tc.p, 1); (err == nil) != (tc.wantErr == "") {
				t.Errorf("NewHasher error = %v, want error %v", err, tc.wantErr != "")
			}
		})
	}
}

// The semaphore bounds concurrent hashing, and waiting honours ctx.
func TestHasherBound(t *testing.T) {
	h, err := NewHasher(fastParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.sem <- struct{}{} // occupy the only slot

	// A hash waits while the slot is taken and runs once it is free.
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "password")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Hash returned (%v) while the only slot was taken", err)
	case <-time.After(50 * time.Millisecond):
	}
	<-h.sem // free the slot
	if err := <-done; err != nil {
		t.Fatalf("Hash after the slot freed = %v", err)
	}

	// Cancelling ctx while waiting returns ctx's error.
	h.sem <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := h.Verify(ctx, h.dummy, "password")
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Verify with ctx cancelled while waiting = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Verify did not return after ctx was cancelled")
	}

	// A deadline while waiting, through VerifyDummy.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := h.VerifyDummy(dctx, "password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("VerifyDummy with a deadline while waiting = %v, want context.DeadlineExceeded", err)
	}
	<-h.sem

	// An already-cancelled ctx fails even with a free slot.
	if _, err := h.Hash(ctx, "password"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a cancelled ctx = %v, want context.Canceled", err)
	}
	if err := h.VerifyDummy(context.Background(), "password"); err != nil {
		t.Errorf("VerifyDummy = %v, want nil", err)
	}
	if len(h.sem) != 0 {
		t.Errorf("%d slots still held after all calls returned", len(h.sem))
	}
}

// FuzzVerifyPHC checks that no stored string makes Verify panic and that
// whatever parses is canonical (re-encodes to itself).
func FuzzVerifyPHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2id$v=19$m=64,t=0,p=0$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$$")
	f.Add("$$$$$")
	f.Add("")
	h, err := NewHasher(fastParams, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, phc string) {
		p, salt, key, err := parsePHC(phc)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("parsePHC error %v does not wrap ErrMalformedHash", err)
			}
			if ok, err := h.Verify(context.Background(), phc, "password"); ok || err == nil {
				t.Fatalf("Verify(unparsable) = %v, %v; want false and an error", ok, err)
			}
			return
		}
		if got := encodePHC(p, salt, key); got != phc {
			t.Fatalf("parsePHC accepted a non-canonical string:\n got %q\nwant %q", got, phc)
		}
		// Verify only cheap parameters: valid but costly ones (up to
		// 4 GiB) would stall the fuzzer without finding anything.
		if uint64(p.Memory)*uint64(p.Iterations) > 1<<12 {
			return
		}
		if _, err := h.Verify(context.Background(), phc, "password"); err != nil {
			t.Fatalf("Verify(parsable %q) = %v", phc, err)
		}
	})
}
