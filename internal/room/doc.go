// Package room is the room runtime of a node: it drives the game logic of
// package game. It owns the rooms that live on this node — a Manager holding
// them, one goroutine per active room owning that room's game.Instance, the
// room's bounded mailbox, its clock and timers, seats and their reconnect
// grace, spectators, join tickets, snapshots for inspection, and the end of a
// room with its result.
//
// A room's goroutine is the only code that touches its Instance. Player
// inputs reach it through a bounded mailbox: when the mailbox is full the
// input is refused at once with ErrBusy, so the gateway's reading goroutine
// never waits on a room. Timers and ticks come from Instance.Next and fire on
// the node's injectable clock (internal/clock), so tests move time by hand.
// Inputs and generated entries are applied in clock order: an input is
// stamped with the room clock when the room takes it from the mailbox, and
// every timer or tick due before that stamp is applied first.
//
// Lateness and runaway logic are bounded:
//   - tick lateness (clock reading when a tick is applied minus its
//     scheduled time) is observed in a histogram;
//   - a tick-driven room that falls further behind than Config.MaxCatchUp
//     ticks (the process was stopped, the machine overloaded) catches up that
//     many ticks in order and lets the room clock skip the rest, so the game
//     never sees a burst of hundreds of ticks;
//   - at most Config.MaxInputsPerInstant entries are applied at one clock
//     reading: a timer that reschedules itself with no delay ends the room
//     with an error instead of spinning forever.
//
// A game error or panic ends only its own room, with StatusError and a
// message to its players naming the failure; other rooms and the node go
// on. A room whose seated players do not all join within Config.JoinTimeout
// ends as StatusAbandoned. A player whose session goes away is reported to
// the game as game.Left(LeaveDisconnected) and keeps the seat for the game's
// reconnect grace; joining again within it reports game.Reconnected, else
// the game gets game.Left(LeaveGraceExpired) and the seat is gone.
//
// The package does no I/O of its own: effects are carried out through the
// small interfaces it declares — a Deliverer sends a message to a set of
// users, an EndedSink stores a room's result and publishes it — so it is
// tested without a server.
package room
