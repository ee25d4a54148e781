package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/logdam"
)

// fakeRole records its lifecycle calls in a shared journal.
type fakeRole struct {
	name     string
	startErr error
	journal  *[]string
}

func (f fakeRole) Name() string { return f.name }

func (f fakeRole) Start(context.Context) error {
	*f.journal = append(*f.journal, "start "+f.name)
	return f.startErr
}

func (f fakeRole) Stop(context.Context) error {
	*f.journal = append(*f.journal, "stop "+f.name)
	return nil
}

type fakeDrainer struct{ fakeRole }

func (f fakeDrainer) Drain(context.Context) error {
	*f.journal = append(*f.journal, "drain "+f.name)
	return nil
}

func testApp(t *testing.T) *App {
	dam := logdam.New(io.Discard, 10)
	a := &App{cfg: config.Defaults(), log: slog.New(slog.NewTextHandler(dam, nil)), dam: dam}
	t.Cleanup(func() { a.closeLog(context.Background()) })
	return a
}

func TestRoleLifecycle(t *testing.T) {
	var journal []string
	a := testApp(t)
	roles := []role{
		fakeRole{"store", nil, &journal},
		fakeDrainer{fakeRole{"gateway", nil, &journal}},
		fakeDrainer{fakeRole{"notify", nil, &journal}},
		fakeRole{"listeners", nil, &journal},
	}
	if err := a.startRoles(context.Background(), roles); err != nil {
		t.Fatal(err)
	}
	a.Shutdown(context.Background())
	want := []string{
		"start store", "start gateway", "start notify", "start listeners",
		// Every role still runs while the drainers drain, last first.
		"drain notify", "drain gateway",
		"stop listeners", "stop notify", "stop gateway", "stop store",
	}
	if !slices.Equal(journal, want) {
		t.Errorf("lifecycle\n got %q\nwant %q", journal, want)
	}
}

func TestRoleStartFailure(t *testing.T) {
	var journal []string
	a := testApp(t)
	boom := errors.New("boom")
	roles := []role{
		fakeRole{"store", nil, &journal},
		fakeRole{"bus", nil, &journal},
		fakeRole{"auth", boom, &journal},
		fakeRole{"gateway", nil, &journal},
	}
	err := a.startRoles(context.Background(), roles)
	if !errors.Is(err, boom) || err.Error() != "auth: boom" {
		t.Errorf("err %v, want it to name the role", err)
	}
	// The failed role undoes its half start too; later roles never start.
	want := []string{"start store", "start bus", "start auth", "stop auth", "stop bus", "stop store"}
	if !slices.Equal(journal, want) {
		t.Errorf("lifecycle\n got %q\nwant %q", journal, want)
	}
}
