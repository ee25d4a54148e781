package wire

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// The protocol document must describe every message, field and enum value
// of taisen.realtime.v1, with the close statuses, reconnect advice and
// Connect codes the server really uses. Its schema reference is generated
// from the descriptors; after changing realtime.proto, regenerate it with
//
//	go test ./internal/wire -run TestProtocolDoc -update
//
// (or TAISEN_UPDATE_DOCS=1) and commit docs/protocol.md.

var updateDoc = flag.Bool("update", false, "rewrite the generated reference in docs/protocol.md")

const (
	protocolDoc = "../../docs/protocol.md"
	beginRef    = "<!-- BEGIN GENERATED REFERENCE: go test ./internal/wire -run TestProtocolDoc -update -->"
	endRef      = "<!-- END GENERATED REFERENCE -->"
)

func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(doc, []byte(beginRef)), bytes.Index(doc, []byte(endRef))
	if begin < 0 || end < begin {
		t.Fatalf("%s: no generated reference between %q and %q", protocolDoc, beginRef, endRef)
	}
	want := "\n" + reference() + "\n"
	got := string(doc[begin+len(beginRef) : end])
	if got != want {
		if *updateDoc || os.Getenv("TAISEN_UPDATE_DOCS") != "" {
			out := append(append(append([]byte{}, doc[:begin+len(beginRef)]...), want...), doc[end:]...)
			if err := os.WriteFile(protocolDoc, out, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the generated reference in %s", protocolDoc)
		} else {
			t.Errorf("%s: the generated reference is stale: run go test ./internal/wire -run TestProtocolDoc -update", protocolDoc)
		}
	}
	hand := string(doc[:begin]) + string(doc[end:])
	checkCloseTable(t, hand)
	checkErrorTable(t, hand)
	checkEnumMentions(t, hand)
}

// file is the descriptor of realtime.proto.
func file() protoreflect.FileDescriptor { return realtimev1.File_taisen_realtime_v1_realtime_proto }

// reference renders every message, field and enum value of the schema.
func reference() string {
	var b strings.Builder
	fd := file()
	fmt.Fprintf(&b, "Generated from the descriptors of `%s`\n(`proto/%s`). Field names are the proto names; the JSON column is\nthe protojson name (input accepts both).\n", fd.Package(), fd.Path())
	msgs := fd.Messages()
	for i := 0; i < msgs.Len(); i++ {
		m := msgs.Get(i)
		fmt.Fprintf(&b, "\n#### `%s`\n\n", m.Name())
		fields := m.Fields()
		if fields.Len() == 0 {
			b.WriteString("No fields.\n")
			continue
		}
		b.WriteString("| # | Field | JSON | Type | Oneof |\n|---|---|---|---|---|\n")
		for j := 0; j < fields.Len(); j++ {
			f := fields.Get(j)
			oneof := "–"
			if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
				oneof = "`" + string(o.Name()) + "`"
			}
			fmt.Fprintf(&b, "| %d | `%s` | `%s` | %s | %s |\n", f.Number(), f.Name(), f.JSONName(), fieldType(f), oneof)
		}
	}
	errs := realtimev1.ErrorCode(0).Descriptor().Values()
	b.WriteString("\n#### `ErrorCode`\n\n| # | Name | `Taisen-Error-Code` | Connect code |\n|---|---|---|---|\n")
	for i := 0; i < errs.Len(); i++ {
		v := errs.Get(i)
		c := realtimev1.ErrorCode(v.Number())
		fmt.Fprintf(&b, "| %d | `%s` | `%s` | `%s` |\n", v.Number(), v.Name(), apierr.CodeName(c), apierr.ConnectCode(c))
	}
	reasons := realtimev1.CloseReason(0).Descriptor().Values()
	b.WriteString("\n#### `CloseReason`\n\n| # | Name | Close status | `reconnect` |\n|---|---|---|---|\n")
	for i := 0; i < reasons.Len(); i++ {
		v := reasons.Get(i)
		r := realtimev1.CloseReason(v.Number())
		if r == realtimev1.CloseReason_CLOSE_REASON_UNSPECIFIED {
			fmt.Fprintf(&b, "| %d | `%s` | – | – |\n", v.Number(), v.Name())
			continue
		}
		fmt.Fprintf(&b, "| %d | `%s` | %d | %t |\n", v.Number(), v.Name(), CloseCode(r), Reconnect(r))
	}
	return b.String()
}

func fieldType(f protoreflect.FieldDescriptor) string {
	var t string
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		t = "`" + string(f.Message().FullName()) + "`"
	case protoreflect.EnumKind:
		t = "`" + string(f.Enum().Name()) + "`"
	default:
		t = "`" + f.Kind().String() + "`"
	}
	if f.IsList() {
		t = "repeated " + t
	}
	return t
}

// tableRows returns the cells of the Markdown table that follows heading.
func tableRows(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s: no heading %q", protocolDoc, heading)
	}
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(doc[i+len(heading)+2:], "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		if strings.HasPrefix(cells[0], "---") || cells[0] == "#" {
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table under %q", protocolDoc, heading)
	}
	return rows
}

// checkCloseTable compares the hand-written close reason table (§7.2) with
// the enum and with the close statuses and reconnect advice of this package.
func checkCloseTable(t *testing.T, doc string) {
	seen := map[realtimev1.CloseReason]bool{}
	for _, row := range tableRows(t, doc, "### 7.2 Close reasons") {
		if len(row) < 5 {
			t.Errorf("§7.2: short row %q", row)
			continue
		}
		n, err := strconv.Atoi(row[0])
		if err != nil {
			t.Errorf("§7.2: row %q: bad number", row)
			continue
		}
		r := realtimev1.CloseReason(n)
		name, ok := realtimev1.CloseReason_name[int32(n)]
		if !ok {
			t.Errorf("§7.2: reason %d is not in the schema", n)
			continue
		}
		seen[r] = true
		if want := "`" + strings.TrimPrefix(name, "CLOSE_REASON_") + "`"; row[1] != want {
			t.Errorf("§7.2: reason %d is named %s, want %s", n, row[1], want)
		}
		if r == realtimev1.CloseReason_CLOSE_REASON_UNSPECIFIED {
			continue
		}
		// A reason that is never sent (SLOW) shows "–" and "(advice)".
		silent := row[2] == "–"
		if !silent && row[2] != strconv.Itoa(int(CloseCode(r))) {
			t.Errorf("§7.2: %s has close status %s, want %d", name, row[2], CloseCode(r))
		}
		advice := strings.Trim(row[4], "()")
		if silent != strings.HasPrefix(row[4], "(") {
			t.Errorf("§7.2: %s: reconnect %s: parenthesise it exactly when nothing is sent", name, row[4])
		}
		if advice != strconv.FormatBool(Reconnect(r)) {
			t.Errorf("§7.2: %s has reconnect %s, want %t", name, row[4], Reconnect(r))
		}
	}
	for v, name := range realtimev1.CloseReason_name {
		if !seen[realtimev1.CloseReason(v)] {
			t.Errorf("§7.2: no row for %s", name)
		}
	}
	// The summary line above the table lists the reasons that do not
	// reconnect.
	var stay []string
	for v := 1; v < len(realtimev1.CloseReason_name); v++ {
		if !Reconnect(realtimev1.CloseReason(v)) {
			stay = append(stay, "`"+strings.TrimPrefix(realtimev1.CloseReason_name[int32(v)], "CLOSE_REASON_")+"`")
		}
	}
	line := "`reconnect` is `false` for " + strings.Join(stay[:len(stay)-1], ", ") + " and " + stay[len(stay)-1] + ","
	if !strings.Contains(strings.Join(strings.Fields(doc), " "), line) {
		t.Errorf("§7.2 should say: %s", line)
	}
}

// checkErrorTable compares the hand-written error code table (§8) with
// the enum and the Connect codes of the HTTP APIs.
func checkErrorTable(t *testing.T, doc string) {
	seen := map[realtimev1.ErrorCode]bool{}
	for _, row := range tableRows(t, doc, "## 8. Error codes") {
		if len(row) < 5 {
			t.Errorf("§8: short row %q", row)
			continue
		}
		n, err := strconv.Atoi(row[0])
		if err != nil {
			t.Errorf("§8: row %q: bad number", row)
			continue
		}
		c := realtimev1.ErrorCode(n)
		name, ok := realtimev1.ErrorCode_name[int32(n)]
		if !ok {
			t.Errorf("§8: code %d is not in the schema", n)
			continue
		}
		seen[c] = true
		if want := "`" + strings.TrimPrefix(name, "ERROR_CODE_") + "`"; row[1] != want {
			t.Errorf("§8: code %d is named %s, want %s", n, row[1], want)
		}
		if want := "`" + apierr.ConnectCode(c).String() + "`"; !strings.HasPrefix(row[4], want) {
			t.Errorf("§8: %s has Connect code %s, want %s", name, row[4], want)
		}
	}
	for v, name := range realtimev1.ErrorCode_name {
		if !seen[realtimev1.ErrorCode(v)] {
			t.Errorf("§8: no row for %s", name)
		}
	}
}

var enumMention = regexp.MustCompile(`\b(ERROR_CODE|CLOSE_REASON)_[A-Z_]+\b`)

// checkEnumMentions fails on full enum names the schema does not define
// (a renamed or misspelt value).
func checkEnumMentions(t *testing.T, doc string) {
	for _, m := range enumMention.FindAllString(doc, -1) {
		_, isErr := realtimev1.ErrorCode_value[m]
		_, isReason := realtimev1.CloseReason_value[m]
		if !isErr && !isReason && m != "ERROR_CODE_" && m != "CLOSE_REASON_" {
			t.Errorf("%s mentions %s, which the schema does not define", protocolDoc, m)
		}
	}
}
