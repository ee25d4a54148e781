package store

import (
	"errors"
	"slices"
	"testing"
)

func TestPageSize(t *testing.T) {
	for _, tc := range []struct {
		limit, want int
		err         bool
	}{
		{0, DefaultLimit, false},
		{1, 1, false},
		{MaxLimit, MaxLimit, false},
		{MaxLimit + 1, MaxLimit, false},
		{-1, 0, true},
	} {
		got, err := Page{Limit: tc.limit}.Size()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Page{Limit: %d}.Size() = %d, %v; want %d, error %v", tc.limit, got, err, tc.want, tc.err)
		}
	}
}

func TestCursor(t *testing.T) {
	for _, keys := range [][]string{{"a"}, {"0195a4c2-7e3b-7d41-9a52-6f0e1c2d3b4a", "x"}, {""}, {"ünïcode", "with \"quotes\""}} {
		got, err := DecodeCursor(EncodeCursor(keys...), len(keys))
		if err != nil || !slices.Equal(got, keys) {
			t.Errorf("DecodeCursor(EncodeCursor(%q)) = %q, %v", keys, got, err)
		}
	}
	for _, tc := range []struct {
		name   string
		cursor string
		n      int
	}{
		{"not base64", "!!!", 1},
		{"not JSON", "bm90IGpzb24", 1},
		{"not a list", EncodeCursor() + "x", 1},
		{"wrong key count", EncodeCursor("a", "b"), 1},
		{"a number", "MQ", 1},
	} {
		if _, err := DecodeCursor(tc.cursor, tc.n); !errors.Is(err, ErrBadCursor) {
			t.Errorf("%s: DecodeCursor(%q) = %v, want ErrBadCursor", tc.name, tc.cursor, err)
		}
	}
}

// FuzzDecodeCursor: a cursor comes from clients; whatever it holds,
// DecodeCursor returns n keys or ErrBadCursor, and what it accepts
// encodes back to an equivalent cursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor("a"), 1)
	f.Add(EncodeCursor("a", "b"), 2)
	f.Add("", 1)
	f.Add("W10", 0)
	f.Fuzz(func(t *testing.T, cursor string, n int) {
		n = n & 7
		keys, err := DecodeCursor(cursor, n)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("DecodeCursor(%q, %d) = %v, want ErrBadCursor", cursor, n, err)
			}
			return
		}
		if len(keys) != n {
			t.Fatalf("DecodeCursor(%q, %d) returned %d keys", cursor, n, len(keys))
		}
		again, err := DecodeCursor(EncodeCursor(keys...), n)
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("re-encoded cursor of %q: %q, %v", keys, again, err)
		}
	})
}

func TestSeqCursor(t *testing.T) {
	for _, seq := range []int64{0, 1, 42, 1<<63 - 1} {
		got, err := DecodeSeqCursor(EncodeSeqCursor(seq))
		if err != nil || got != seq {
			t.Errorf("DecodeSeqCursor(EncodeSeqCursor(%d)) = %d, %v", seq, got, err)
		}
	}
	if got, err := DecodeSeqCursor(""); got != 0 || err != nil {
		t.Errorf(`DecodeSeqCursor("") = %d, %v; want 0, nil`, got, err)
	}
	for _, cursor := range []string{"!!!", EncodeCursor("a", "b"), EncodeCursor("x"), EncodeCursor("-1"), EncodeCursor("1.5"),
		EncodeCursor("9223372036854775808"), EncodeCursor(" 1"), EncodeCursor("")} {
		if _, err := DecodeSeqCursor(cursor); !errors.Is(err, ErrBadCursor) {
			t.Errorf("DecodeSeqCursor(%q) = %v, want ErrBadCursor", cursor, err)
		}
	}
}

// FuzzDecodeSeqCursor: an inbox cursor comes from clients; whatever it
// holds, DecodeSeqCursor returns a sequence number >= 0 that encodes back
// to a cursor of the same number, or ErrBadCursor.
func FuzzDecodeSeqCursor(f *testing.F) {
	f.Add(EncodeSeqCursor(7))
	f.Add(EncodeCursor("-1"))
	f.Add("")
	f.Fuzz(func(t *testing.T, cursor string) {
		seq, err := DecodeSeqCursor(cursor)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("DecodeSeqCursor(%q) = %v, want ErrBadCursor", cursor, err)
			}
			return
		}
		if seq < 0 {
			t.Fatalf("DecodeSeqCursor(%q) = %d, want >= 0", cursor, seq)
		}
		again, err := DecodeSeqCursor(EncodeSeqCursor(seq))
		if err != nil || again != seq {
			t.Fatalf("re-encoded cursor of %d: %d, %v", seq, again, err)
		}
	})
}
