package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlans checks that the notification queries that run per user
// or per topic search an index in the order they return rows: no table
// scan, no sort.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "taisen.db"), nil)
	const ts = "2026-11-30T12:00:00.000Z"
	tests := []struct {
		name  string
		query string
		args  []any
		// want is a step the plan must hold.
		want string
	}{
		{"Inbox", inboxQuery, []any{"u", ts, 0, 10}, "SEARCH inbox_items USING INDEX inbox_items_pending_idx (user_id=? AND seq>?)"},
		{"CountInbox", `SELECT count(*) FROM inbox_items WHERE ` + pendingInbox, []any{"u", ts}, "SEARCH inbox_items USING INDEX inbox_items_pending_idx (user_id=?)"},
		{"UsersPending inbox", usersPendingQuery, []any{`["u","v"]`, ts}, "SEARCH inbox_items USING INDEX inbox_items_pending_idx (user_id=?)"},
		{"UsersPending topics", usersPendingQuery, []any{`["u","v"]`, ts}, "SEARCH topic_subscriptions USING COVERING INDEX topic_subscriptions_user_id_idx (user_id=?)"},
		{"UserTopics", userTopicsQuery, []any{"u"}, "SEARCH topic_subscriptions USING COVERING INDEX topic_subscriptions_user_id_idx (user_id=?)"},
		{"TopicSubscribers", topicSubscribersQuery, []any{"t", "", 10}, "SEARCH topic_subscriptions USING PRIMARY KEY (topic=? AND user_id>?)"},
		{"RetainedItems", retainedItemsQuery, []any{`["t"]`, ts}, "SEARCH topic_items USING INDEX"},
		{"PruneInbox tombstones", pruneInboxQuery, []any{ts, ts, ts, 10}, "SEARCH inbox_items USING COVERING INDEX inbox_items_removed_at_idx"},
		{"PruneInbox expired", pruneInboxQuery, []any{ts, ts, ts, 10}, "SEARCH inbox_items USING INDEX inbox_items_expires_at_idx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tt.query, tt.args...)
			if err != nil {
				t.Fatalf("EXPLAIN: %v", err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var (
					id, parent, notUsed int
					detail              string
				)
				if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(plan, "\n")
			if !strings.Contains(all, tt.want) {
				t.Errorf("plan of %s:\n%s\nwant a step %q", tt.name, all, tt.want)
			}
			for _, bad := range []string{"SCAN inbox_items", "SCAN topic_subscriptions", "SCAN topic_items", "TEMP B-TREE"} {
				if strings.Contains(all, bad) {
					t.Errorf("plan of %s:\n%s\nwant no %q", tt.name, all, bad)
				}
			}
		})
	}
}
