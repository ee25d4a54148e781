// Package game is the contract between a game's logic and the taisen room
// runtime: a game is Go code that turns (state, input) into (new state,
// effects), deterministically, and the runtime does everything else —
// sockets, clocks, timers, storage, fan-out.
//
// # The contract
//
// A game is a Def[S] over its own state type S:
//
//	def := game.Def[State]{
//		Name:     "tictactoe",
//		Settings: game.Settings{MinPlayers: 2, MaxPlayers: 2},
//		Init:     initState,  // (ctx, setup) -> first state
//		Apply:    applyInput, // (ctx, state, input) -> (state, effects, error)
//	}
//	g, err := game.New(def) // a Game the runtime can hold beside games of other state types
//
// Init runs once when a room is created, with the room's params, its seated
// players and its seed. Apply runs once per input, in order, on one
// goroutine: a player's action, a player joined / left / reconnected, a
// named timer fired, a tick (games with a tick rate). It returns the new
// state and the effects the runtime carries out: send a message to all
// players, some seats or the spectators; schedule or cancel a named timer;
// end the room with a result.
//
// # Determinism
//
// Apply must be a pure function of its arguments, so a room's input log
// replays to exactly the same states and effects (the gametest package
// checks this). Inside Init and Apply:
//
//   - no wall clock: the room's clock is Context.Now, a time.Duration since
//     the room started that the runtime advances (a timer's input carries its
//     due time, a tick its scheduled time);
//   - no randomness except Context.Rand, which is seeded from the room seed
//     and the input's sequence number, so replay needs no RNG state;
//   - no goroutines, no I/O, no globals that change; master data only
//     through Context.Master, pinned to one version for the room's life;
//   - no dependence on map iteration order (iterate sorted keys);
//   - do not modify memory reachable from the state you are given: return a
//     new value (arrays and structs of values copy for free; clone slices
//     and maps before changing them). The runtime keeps the old state when
//     an input is rejected.
//
// # Errors
//
// Apply has three outcomes. A nil error: the new state is kept and the
// effects are carried out. A *Rejection (Reject, Rejectf), possibly
// wrapped: the input is refused, the state and effects are dropped, the
// player who sent it sees the reason, and the room goes on. Any other error
// — and any panic, which an Instance turns into a *PanicError — ends the
// room with an error result: it means the game's own logic failed.
// Rejections are meant for actions; a rejected join, leave, timer or tick
// is dropped the same way, with nobody to tell (the timer is spent).
//
// # The runtime's side
//
// New erases S: a Game starts an Instance per room, which holds the typed
// state, applies log Entries (sequence number, clock reading, input), keeps
// the room's pending timers, and encodes the state and timers as a Snapshot
// that Game.Restore turns back into an Instance.
package game
