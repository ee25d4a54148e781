package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
)

func runNodes(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:7351", "admin URL of any node of the cluster")
	key := fs.String("server-key", "", "server key (default: $TAISEN_SERVER_KEY, else the server.key file in --data); flags show in ps, prefer the others")
	data := fs.String("data", "./taisen-data", "data directory holding server.key, when neither --server-key nor $TAISEN_SERVER_KEY is set")
	asJSON := fs.Bool("json", false, "print a JSON array of the node records (snake_case fields)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taisen nodes [flags]")
		fmt.Fprintln(stderr, "\nLists the live nodes of the cluster from their heartbeats (NodeService.ListNodes on")
		fmt.Fprintln(stderr, "the admin listener): readiness, draining, sessions, sockets, version and endpoints.")
		fmt.Fprintln(stderr, "A node that stopped is listed until three of its heartbeats are missed.")
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected arguments: %v", errUsage, fs.Args())
	}
	serverKey, err := findServerKey(*key, getenv, *data)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl := adminv1connect.NewNodeServiceClient(http.DefaultClient, strings.TrimRight(*admin, "/"))
	req := connect.NewRequest(&adminv1.ListNodesRequest{})
	req.Header().Set("Authorization", "Bearer "+serverKey)
	resp, err := cl.ListNodes(ctx, req)
	if err != nil {
		switch connect.CodeOf(err) {
		case connect.CodeUnauthenticated:
			return fmt.Errorf("%s refused the server key (give the cluster's key with --server-key, $TAISEN_SERVER_KEY or --data)", *admin)
		case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeDeadlineExceeded:
			return fmt.Errorf("cannot list nodes at %s (is a node's admin listener there?): %w", *admin, err)
		}
		return fmt.Errorf("list nodes at %s: %w", *admin, err)
	}
	if *asJSON {
		return writeNodesJSON(stdout, resp.Msg.Nodes)
	}
	writeNodesTable(stdout, resp.Msg.Nodes, time.Now())
	return nil
}

// writeNodesJSON prints the records as an indented JSON array, each in
// protojson form with proto field names and every field present.
func writeNodesJSON(w io.Writer, nodes []*clusterv1.NodeRecord) error {
	opts := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	var raw bytes.Buffer
	raw.WriteByte('[')
	for i, n := range nodes {
		if i > 0 {
			raw.WriteByte(',')
		}
		b, err := opts.Marshal(n)
		if err != nil {
			return fmt.Errorf("encode node %s: %w", n.NodeId, err)
		}
		raw.Write(b)
	}
	raw.WriteByte(']')
	var out bytes.Buffer
	if err := json.Indent(&out, raw.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("encode nodes: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// writeNodesTable prints one line per node for people.
func writeNodesTable(w io.Writer, nodes []*clusterv1.NodeRecord, now time.Time) {
	if len(nodes) == 0 {
		fmt.Fprintln(w, "no live nodes")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tSESSIONS\tDETACHED\tSOCKETS\tLOOPS\tVERSION\tUP\tSEEN\tCLIENT\tADMIN")
	for _, n := range nodes {
		state := "not ready"
		switch {
		case n.Draining:
			state = "draining"
		case n.Ready:
			state = "ready"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s ago\t%s\t%s\n",
			n.NodeId, state, n.Sessions, n.DetachedSessions, n.Sockets, n.EpollLoops, n.Version,
			age(now, n.StartedAt.AsTime()), age(now, n.UpdatedAt.AsTime()), n.GetEndpoints().GetClient(), n.GetEndpoints().GetAdmin())
	}
	_ = tw.Flush()
}

// age is a short duration since t: "850ms", "12s", "3m4s", "2h5m0s".
func age(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
