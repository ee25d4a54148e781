package game

import (
	"math/rand/v2"
	"time"
)

// Context is what Init and Apply know besides the state and the input: the
// room clock, the input's sequence number, the room's randomness and its
// pinned master data. The runtime owns it and reuses it between inputs;
// do not keep it after Apply returns.
type Context struct {
	now    time.Duration
	seq    uint64
	seed   uint64
	master MasterData

	pcg    rand.PCG
	rng    *rand.Rand // on c.pcg; nil until the first Rand call
	seeded bool       // pcg holds the stream of seq
	fx     []Effect   // handed out by Effects, reused
}

// ContextOptions are the readings a Context is made with.
type ContextOptions struct {
	// Now is the room clock reading.
	Now time.Duration
	// Seq is the input's sequence number (0 for Init).
	Seq uint64
	// Seed is the room's seed (Setup.Seed).
	Seed uint64
	// Master is the room's pinned master data; nil means none (Master
	// then returns an empty version).
	Master MasterData
}

// NewContext returns a Context with the given readings. Instances make
// their own; use it to call a game's functions directly in unit tests.
func NewContext(o ContextOptions) *Context {
	c := &Context{seed: o.Seed, master: o.Master}
	if c.master == nil {
		c.master = noMaster{}
	}
	c.reset(o.Seq, o.Now)
	return c
}

func (c *Context) reset(seq uint64, now time.Duration) {
	c.seq, c.now, c.seeded = seq, now, false
}

// Now returns the room clock: the time since the room started, advanced by
// the runtime (a timer's input reads its due time, tick n reads
// Settings.TickTime(n)). It is the only clock a game may read.
func (c *Context) Now() time.Duration { return c.now }

// Seq returns the input's sequence number (0 in Init).
func (c *Context) Seq() uint64 { return c.seq }

// Rand returns the input's random source: a PCG stream determined by the
// room seed and the sequence number alone, so replaying an input log needs
// no RNG state. Every call during one input returns the same source,
// continuing the same stream.
func (c *Context) Rand() *rand.Rand {
	if !c.seeded {
		c.pcg.Seed(c.seed, mix(c.seq^0x9e3779b97f4a7c15))
		c.seeded = true
	}
	if c.rng == nil {
		c.rng = rand.New(&c.pcg)
	}
	return c.rng
}

// Master returns the master data the room pinned at creation; it stays the
// same version for the room's whole life.
func (c *Context) Master() MasterData { return c.master }

// Effects returns an empty slice whose capacity is reused from input to
// input, to append this input's effects to without allocating. The runtime
// is done with the previous input's effects before it calls Apply again.
func (c *Context) Effects() []Effect { return c.fx[:0] }

// mix is splitmix64's finaliser: neighbouring sequence numbers get
// unrelated streams.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
