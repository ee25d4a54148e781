package game

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"
)

type typedGame[S any] struct {
	def Def[S]
}

func (g *typedGame[S]) Name() string       { return g.def.Name }
func (g *typedGame[S]) Settings() Settings { return g.def.Settings }

func (g *typedGame[S]) checkSetup(setup Setup) error {
	s := g.def.Settings
	n := len(setup.Players)
	if n < s.MinPlayers || n > s.MaxPlayers {
		return fmt.Errorf("%d players: game %s seats %d to %d", n, g.def.Name, s.MinPlayers, s.MaxPlayers)
	}
	seen := make([]bool, n)
	for _, p := range setup.Players {
		if p.Seat < 0 || int(p.Seat) >= n {
			return fmt.Errorf("player %q: seat %d outside 0 to %d", p.UserID, p.Seat, n-1)
		}
		if seen[p.Seat] {
			return fmt.Errorf("seat %d given twice", p.Seat)
		}
		seen[p.Seat] = true
	}
	return nil
}

func (g *typedGame[S]) newInstance(setup Setup, md MasterData) *instance[S] {
	return &instance[S]{
		g:     g,
		seats: len(setup.Players),
		ctx:   NewContext(ContextOptions{Seed: setup.Seed, Master: md}),
	}
}

func (g *typedGame[S]) Start(setup Setup, md MasterData) (Instance, error) {
	if err := g.checkSetup(setup); err != nil {
		return nil, fmt.Errorf("start %s: %w", g.def.Name, err)
	}
	inst := g.newInstance(setup, md)
	st, err := callInit(g.def.Init, inst.ctx, setup)
	if err != nil {
		return nil, fmt.Errorf("start %s: init: %w", g.def.Name, err)
	}
	inst.state = st
	return inst, nil
}

func (g *typedGame[S]) Restore(setup Setup, md MasterData, snap Snapshot) (Instance, error) {
	if err := g.checkSetup(setup); err != nil {
		return nil, fmt.Errorf("restore %s: %w", g.def.Name, err)
	}
	if snap.Game != g.def.Name {
		return nil, fmt.Errorf("restore %s: snapshot is of game %q", g.def.Name, snap.Game)
	}
	inst := g.newInstance(setup, md)
	if v := inst.ctx.master.Version(); v != snap.MasterVersion {
		return nil, fmt.Errorf("restore %s: snapshot pinned master data %q, given %q", g.def.Name, snap.MasterVersion, v)
	}
	st, err := g.def.Codec.Unmarshal(snap.State)
	if err != nil {
		return nil, fmt.Errorf("restore %s: decode state: %w", g.def.Name, err)
	}
	inst.state = st
	inst.seq, inst.now, inst.tick = snap.Seq, snap.At, snap.Tick
	inst.timers = slices.Clone(snap.Timers)
	slices.SortFunc(inst.timers, timerCmp)
	inst.order = snap.NextOrder
	inst.ended, inst.result = snap.Ended, slices.Clone(snap.Result)
	return inst, nil
}

type instance[S any] struct {
	g     *typedGame[S]
	seats int
	ctx   *Context
	state S

	seq    uint64        // last applied
	now    time.Duration // last applied
	tick   uint64        // last tick applied
	timers []Timer       // pending, sorted by timerCmp
	order  uint64        // next timer's Order
	ended  bool
	result []byte
}

func timerCmp(a, b Timer) int {
	if a.Due != b.Due {
		if a.Due < b.Due {
			return -1
		}
		return 1
	}
	switch {
	case a.Order < b.Order:
		return -1
	case a.Order > b.Order:
		return 1
	}
	return 0
}

func (i *instance[S]) checkEntry(e Entry) error {
	if e.Seq <= i.seq {
		return fmt.Errorf("seq %d after %d: %w", e.Seq, i.seq, ErrBadEntry)
	}
	if e.At < i.now {
		return fmt.Errorf("clock %v before %v: %w", e.At, i.now, ErrBadEntry)
	}
	in := e.Input
	switch in.Kind {
	case InputAction, InputJoined, InputReconnected:
		if in.Seat < 0 || int(in.Seat) >= i.seats {
			return fmt.Errorf("%v: no seat %d: %w", in.Kind, in.Seat, ErrBadEntry)
		}
	case InputLeft:
		if in.Seat < 0 || int(in.Seat) >= i.seats {
			return fmt.Errorf("%v: no seat %d: %w", in.Kind, in.Seat, ErrBadEntry)
		}
		if in.Reason < LeaveDisconnected || in.Reason > LeaveGraceExpired {
			return fmt.Errorf("left: unknown reason %d: %w", in.Reason, ErrBadEntry)
		}
	case InputTimer:
		k := i.timerIndex(in.Timer)
		if k < 0 {
			return fmt.Errorf("timer %q is not pending: %w", in.Timer, ErrBadEntry)
		}
		if e.At < i.timers[k].Due {
			return fmt.Errorf("timer %q fired at %v, due %v: %w", in.Timer, e.At, i.timers[k].Due, ErrBadEntry)
		}
	case InputTick:
		if i.g.def.Settings.TickRate == 0 {
			return fmt.Errorf("tick for an event-driven game: %w", ErrBadEntry)
		}
		if in.Tick != i.tick+1 {
			return fmt.Errorf("tick %d after %d: %w", in.Tick, i.tick, ErrBadEntry)
		}
	default:
		return fmt.Errorf("input kind %v: %w", in.Kind, ErrBadEntry)
	}
	return nil
}

func (i *instance[S]) timerIndex(name string) int {
	for k := range i.timers {
		if i.timers[k].Name == name {
			return k
		}
	}
	return -1
}

func (i *instance[S]) Apply(e Entry) ([]Effect, error) {
	if i.ended {
		return nil, fmt.Errorf("%s: seq %d: %w", i.g.def.Name, e.Seq, ErrEnded)
	}
	if err := i.checkEntry(e); err != nil {
		return nil, fmt.Errorf("%s: %w", i.g.def.Name, err)
	}
	i.seq, i.now = e.Seq, e.At
	switch e.Input.Kind {
	case InputTimer:
		i.timers = slices.Delete(i.timers, i.timerIndex(e.Input.Timer), i.timerIndex(e.Input.Timer)+1)
	case InputTick:
		i.tick = e.Input.Tick
	}
	i.ctx.reset(e.Seq, e.At)
	st, fx, err := callApply(i.g.def.Apply, i.ctx, i.state, e.Input)
	if cap(fx) > cap(i.ctx.fx) {
		i.ctx.fx = make([]Effect, 0, 2*cap(fx))
	}
	if err != nil {
		if _, ok := IsRejection(err); ok {
			return nil, fmt.Errorf("%s: seq %d: %w", i.g.def.Name, e.Seq, err)
		}
		i.ended = true
		return nil, fmt.Errorf("%s: seq %d (%v): %w", i.g.def.Name, e.Seq, e.Input, err)
	}
	if err := i.checkEffects(fx); err != nil {
		i.ended = true
		return nil, fmt.Errorf("%s: seq %d (%v): %w", i.g.def.Name, e.Seq, e.Input, err)
	}
	i.state = st
	for k, f := range fx {
		switch f.Kind {
		case EffectSchedule:
			if k := i.timerIndex(f.Timer); k >= 0 {
				i.timers = slices.Delete(i.timers, k, k+1)
			}
			t := Timer{Name: f.Timer, Due: e.At + max(f.After, 0), Order: i.order}
			i.order++
			k, _ := slices.BinarySearchFunc(i.timers, t, timerCmp)
			i.timers = slices.Insert(i.timers, k, t)
		case EffectCancel:
			if k := i.timerIndex(f.Timer); k >= 0 {
				i.timers = slices.Delete(i.timers, k, k+1)
			}
		case EffectEnd:
			i.ended, i.result = true, f.Payload
			i.timers = i.timers[:0]
			return fx[:k+1], nil
		}
	}
	return fx, nil
}

// errBadEffect is wrapped by the error of an Apply that returned an
// effect the runtime cannot carry out.
var errBadEffect = errors.New("game returned an invalid effect")

func (i *instance[S]) checkEffects(fx []Effect) error {
	for k, f := range fx {
		switch f.Kind {
		case EffectSend:
			if f.Type == "" {
				return fmt.Errorf("effect %d: send without a type: %w", k, errBadEffect)
			}
			for _, s := range f.To.Seats {
				if s < 0 || int(s) >= i.seats {
					return fmt.Errorf("effect %d: send to seat %d of %d: %w", k, s, i.seats, errBadEffect)
				}
			}
			if f.Delivery > Ephemeral {
				return fmt.Errorf("effect %d: delivery %d: %w", k, f.Delivery, errBadEffect)
			}
		case EffectSchedule, EffectCancel:
			if f.Timer == "" {
				return fmt.Errorf("effect %d: %v of an unnamed timer: %w", k, f.Kind, errBadEffect)
			}
		case EffectEnd:
		default:
			return fmt.Errorf("effect %d: kind %v: %w", k, f.Kind, errBadEffect)
		}
	}
	return nil
}

func (i *instance[S]) Next() (time.Duration, Input, bool) {
	if i.ended {
		return 0, Input{}, false
	}
	s := i.g.def.Settings
	if len(i.timers) > 0 {
		t := i.timers[0]
		if s.TickRate == 0 || t.Due <= s.TickTime(i.tick+1) {
			return t.Due, TimerFired(t.Name), true
		}
	}
	if s.TickRate > 0 {
		return s.TickTime(i.tick + 1), Tick(i.tick + 1), true
	}
	return 0, Input{}, false
}

func (i *instance[S]) Timers() []Timer { return slices.Clone(i.timers) }

func (i *instance[S]) Ended() ([]byte, bool) { return i.result, i.ended }

func (i *instance[S]) State() ([]byte, error) {
	b, err := i.g.def.Codec.Marshal(i.state)
	if err != nil {
		return nil, fmt.Errorf("%s: encode state: %w", i.g.def.Name, err)
	}
	return b, nil
}

func (i *instance[S]) Summary() []byte {
	if i.g.def.Summary == nil {
		return nil
	}
	return i.g.def.Summary(i.state)
}

func (i *instance[S]) Snapshot() (Snapshot, error) {
	b, err := i.State()
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{
		Game:          i.g.def.Name,
		MasterVersion: i.ctx.master.Version(),
		Seq:           i.seq,
		At:            i.now,
		Tick:          i.tick,
		Timers:        slices.Clone(i.timers),
		NextOrder:     i.order,
		Ended:         i.ended,
		Result:        slices.Clone(i.result),
		State:         b,
	}, nil
}

func callInit[S any](f InitFunc[S], ctx *Context, setup Setup) (st S, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return f(ctx, setup)
}

func callApply[S any](f ApplyFunc[S], ctx *Context, state S, in Input) (st S, fx []Effect, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return f(ctx, state, in)
}
