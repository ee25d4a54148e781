package sqlite

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-11-30T12:34:56.789Z", want: time.Date(2026, 11, 30, 12, 34, 56, 789e6, time.UTC)},
		{in: "0001-01-01T00:00:00.000Z", want: time.Time{}},
		{in: "2024-02-29T23:59:59.999Z", want: time.Date(2024, 2, 29, 23, 59, 59, 999e6, time.UTC)},
		{in: "2025-02-29T00:00:00.000Z", wantErr: true}, // not a leap year
		{in: "2026-04-31T00:00:00.000Z", wantErr: true},
		{in: "2026-13-01T00:00:00.000Z", wantErr: true},
		{in: "2026-00-01T00:00:00.000Z", wantErr: true},
		{in: "2026-01-00T00:00:00.000Z", wantErr: true},
		{in: "2026-01-01T24:00:00.000Z", wantErr: true},
		{in: "2026-01-01T00:60:00.000Z", wantErr: true},
		{in: "2026-01-01T00:00:60.000Z", wantErr: true},
		{in: "2026-01-01T00:00:00.00aZ", wantErr: true},
		{in: "2026-01-01 00:00:00.000Z", wantErr: true},
		{in: "2026-01-01T00:00:00.000", wantErr: true},
		{in: "2026-1-01T00:00:00.000Z", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := parseTime(tc.in)
		if (err != nil) != tc.wantErr || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// FuzzParseTime checks the fast path against time.Parse: what it accepts,
// time.Parse accepts as the same time, and it accepts every timestamp as
// formatTime writes it. (time.Parse is laxer: "0:00:00,000" passes.)
func FuzzParseTime(f *testing.F) {
	f.Add("2026-11-30T12:34:56.789Z")
	f.Add("2024-02-29T23:59:59.999Z")
	f.Add("2025-02-29T00:00:00.000Z")
	f.Fuzz(func(t *testing.T, s string) {
		want, wantErr := time.Parse(timeLayout, s)
		got, ok := parseTimeFast(s)
		canonical := wantErr == nil && formatTime(want) == s
		if ok && (wantErr != nil || !got.Equal(want)) || canonical && !ok {
			t.Fatalf("parseTimeFast(%q) = %v, %v; time.Parse: %v, %v", s, got, ok, want, wantErr)
		}
	})
}

// FuzzFormatTime checks formatTime against time.Format with timeLayout,
// for any instant and zone.
func FuzzFormatTime(f *testing.F) {
	f.Add(int64(0), int64(0), 0)
	f.Add(int64(1796041696), int64(789e6), 3600)
	f.Add(int64(-62135596800), int64(0), 0)         // year 1
	f.Add(int64(253402300799), int64(999999999), 0) // 9999-12-31T23:59:59.999
	f.Add(int64(253402300800), int64(0), -7200)     // year 10000
	f.Add(int64(-62135596801), int64(0), 0)         // year 0
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("z", offset%86400))
		if got, want := formatTime(tm), tm.UTC().Format(timeLayout); got != want {
			t.Fatalf("formatTime(%v) = %q; want %q", tm, got, want)
		}
	})
}
