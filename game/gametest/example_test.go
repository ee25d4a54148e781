package gametest_test

import (
	"fmt"
	"time"

	"github.com/taisen-dev/taisen/game/gametest"
)

// A Room runs a game on a fake clock: Advance fires the game's timers at
// their due times; the log replays to the same steps.
func ExampleRoom() {
	r, err := gametest.New(clockDef(0), gametest.Config{Players: 1, Seed: 1})
	if err != nil {
		panic(err)
	}
	r.Act(0, "after", []byte("bell")) // rings after 4 s
	steps, _ := r.Advance(5 * time.Second)
	for _, s := range steps {
		fmt.Println(s.Entry.At, s.Entry.Input)
	}
	fmt.Println(r.State().Seen)

	replayed, _ := gametest.Replay(clockDef(0), r.Setup(), nil, r.Log())
	fmt.Printf("replay differs: %q\n", gametest.Diff(r.Steps(), replayed))
	// Output:
	// 4s timer "bell"
	// [bell@4s]
	// replay differs: ""
}
