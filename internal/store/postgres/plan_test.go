package postgres

import (
	"strings"
	"testing"
	"time"
)

// TestQueryPlans checks that the notification queries that run per user
// or per topic can search an index in the order they return rows. Table
// and bitmap scans are disabled for the session, so the plan shows
// whether an index serves the query, in order, whatever the table sizes;
// a Sort node means the index does not give the order.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, newSchema(t, "taisen_test_"), nil)
	conn, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `SET enable_seqscan = off; SET enable_bitmapscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(t.Context(), `RESET enable_seqscan; RESET enable_bitmapscan`) //nolint:errcheck // The connection goes back to a pool closed with the test.
	ts := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		query  string
		args   []any
		want   string
		sorted bool // the plan may sort (several topics at once)
	}{
		{"Inbox", inboxQuery, []any{"u", ts, int64(0), 10}, "inbox_items_pending_idx", false},
		{"CountInbox", `SELECT count(*) FROM inbox_items WHERE ` + pendingInbox, []any{"u", ts}, "inbox_items_pending_idx", false},
		{"UsersPending inbox", usersPendingQuery, []any{[]string{"u", "v"}, ts}, "inbox_items_pending_idx", false},
		{"UsersPending topics", usersPendingQuery, []any{[]string{"u", "v"}, ts}, "topic_subscriptions_user_id_idx", false},
		{"UserTopics", userTopicsQuery, []any{"u"}, "topic_subscriptions_user_id_idx", false},
		{"TopicSubscribers", topicSubscribersQuery, []any{"t", "", 10}, "topic_subscriptions_pkey", false},
		{"RetainedItems", retainedItemsQuery, []any{[]string{"a", "b"}, ts}, "Index Scan using topic_items_", true},
		{"PruneInbox tombstones", pruneInboxQuery, []any{ts, 10}, "inbox_items_removed_at_idx", false},
		{"PruneInbox expired", pruneInboxQuery, []any{ts, 10}, "inbox_items_expires_at_idx", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := conn.Query(t.Context(), "EXPLAIN "+tt.query, tt.args...)
			if err != nil {
				t.Fatalf("EXPLAIN: %v", err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(plan, "\n")
			if !strings.Contains(all, tt.want) {
				t.Errorf("plan of %s:\n%s\nwant a step on %s", tt.name, all, tt.want)
			}
			if strings.Contains(all, "Seq Scan") {
				t.Errorf("plan of %s:\n%s\nwant no Seq Scan", tt.name, all)
			}
			if !tt.sorted && strings.Contains(all, "Sort") {
				t.Errorf("plan of %s:\n%s\nwant no Sort", tt.name, all)
			}
		})
	}
}
