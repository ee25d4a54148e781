package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The server metrics a run reads.
const (
	metricRSS        = "process_resident_memory_bytes"
	metricGoroutines = "go_goroutines"
	metricSessions   = "taisen_sessions_active"
	metricCPU        = "process_cpu_seconds_total"
)

// How the server is measured while the sessions are held.
const (
	scrapeCount    = 3
	scrapeInterval = time.Second
	scrapeTimeout  = 5 * time.Second
)

// parseMetrics reads the Prometheus text exposition format and returns
// the value of each wanted metric, summed over its label sets. Metrics
// that are absent are absent from the map.
func parseMetrics(r io.Reader, wanted ...string) (map[string]float64, error) {
	out := make(map[string]float64, len(wanted))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := splitSample(line)
		if !ok || !slices.Contains(wanted, name) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metric %s has no value", name)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: value %q: %w", name, fields[0], err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// splitSample splits a sample line into the metric name and what follows
// its labels (value and optional timestamp). Label values may hold spaces,
// braces and escaped quotes.
func splitSample(line string) (name, rest string, ok bool) {
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return "", "", false
	}
	name = line[:i]
	if line[i] != '{' {
		return name, line[i:], true
	}
	inQuote, escaped := false, false
	for j := i + 1; j < len(line); j++ {
		ch := line[j]
		switch {
		case escaped:
			escaped = false
		case ch == '\\' && inQuote:
			escaped = true
		case ch == '"':
			inQuote = !inQuote
		case ch == '}' && !inQuote:
			return name, line[j+1:], true
		}
	}
	return "", "", false
}

// serverSample is one scrape of the server metrics a run reads.
type serverSample struct {
	rss, goroutines, sessions float64
	// cpu is the server's user and system CPU time so far, in seconds;
	// hasCPU is false when the server does not export it.
	cpu    float64
	hasCPU bool
}

// scraper reads a node's admin /metrics.
type scraper struct {
	hc       *http.Client
	adminURL string
	// key, when set, is sent as a bearer token for a node whose /metrics
	// require the server key.
	key string
}

// scrape reads the server's /metrics once.
func (sc scraper) scrape(ctx context.Context) (serverSample, error) {
	hc, adminURL := sc.hc, sc.adminURL
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(adminURL, "/")+"/metrics", nil)
	if err != nil {
		return serverSample{}, fmt.Errorf("scrape metrics: %w", err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	if sc.key != "" {
		req.Header.Set("Authorization", "Bearer "+sc.key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return serverSample{}, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		hint := "the node's /metrics require the server key: pass --server-key or set TAISEN_SERVER_KEY"
		if sc.key != "" {
			hint = "the node refused the server key given"
		}
		return serverSample{}, fmt.Errorf("scrape metrics: %s from %s/metrics: %s", resp.Status, adminURL, hint)
	case resp.StatusCode != http.StatusOK:
		return serverSample{}, fmt.Errorf("scrape metrics: %s from %s/metrics", resp.Status, adminURL)
	}
	m, err := parseMetrics(resp.Body, metricRSS, metricGoroutines, metricSessions, metricCPU)
	if err != nil {
		return serverSample{}, fmt.Errorf("scrape metrics: %w", err)
	}
	if _, ok := m[metricRSS]; !ok {
		return serverSample{}, fmt.Errorf("scrape metrics: %s/metrics has no %s (is the process collector registered?)", adminURL, metricRSS)
	}
	cpu, hasCPU := m[metricCPU]
	return serverSample{rss: m[metricRSS], goroutines: m[metricGoroutines], sessions: m[metricSessions], cpu: cpu, hasCPU: hasCPU}, nil
}

// scrapeMedian scrapes scrapeCount times, scrapeInterval apart, and
// returns the median of each gauge (the CPU time of the last scrape).
func (sc scraper) scrapeMedian(ctx context.Context) (serverSample, error) {
	var samples []serverSample
	for i := range scrapeCount {
		if i > 0 {
			t := time.NewTimer(scrapeInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return serverSample{}, fmt.Errorf("scrape metrics: %w", ctx.Err())
			case <-t.C:
			}
		}
		s, err := sc.scrape(ctx)
		if err != nil {
			return serverSample{}, err
		}
		samples = append(samples, s)
	}
	med := func(get func(serverSample) float64) float64 {
		vs := make([]float64, len(samples))
		for i, s := range samples {
			vs[i] = get(s)
		}
		return median(vs)
	}
	return serverSample{
		rss:        med(func(s serverSample) float64 { return s.rss }),
		goroutines: med(func(s serverSample) float64 { return s.goroutines }),
		sessions:   med(func(s serverSample) float64 { return s.sessions }),
		cpu:        samples[len(samples)-1].cpu,
		hasCPU:     samples[len(samples)-1].hasCPU,
	}, nil
}

// median returns the middle value (the mean of the two middle values for
// an even count); 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
