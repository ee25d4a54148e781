// Package duel is a small two-player card battle for taisen rooms, in the
// shape of a production card game's battle server: the battle is a pure
// function of (state, input), card definitions are master data (the JSON
// document "cards") read from the version the room pinned at its creation,
// and the state holds card ids only, never definitions, so a snapshot
// carries no master data and a new master data version never changes a
// running battle.
//
// Rules: each player starts with HP and a hand dealt at random from the
// catalog. Players take turns playing one card from their hand: it deals
// its damage to the opponent and heals its player (never above the
// starting HP), then its player draws a random card. A player at 0 HP
// loses; so does one who leaves for good.
//
// Protocol: the action "play" carries {"card": "<id>"}. The room sends
// "start" (HP and whose turn), each player's own hand as "hand" (to that
// seat only), "played" {"seat", "card", "hp"} after each card, and ends
// with a Result, also broadcast as "over".
package duel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/taisen-dev/taisen/game"
)

// Name is the game's registered name.
const Name = "duel"

// CardsDocument is the master data document holding the card catalog: a
// JSON array of Card.
const CardsDocument = "cards"

// Card is one card definition, from master data.
type Card struct {
	// ID names the card: 1 to 32 bytes of a-z, 0-9, '_' or '-'.
	ID string `json:"id"`
	// Damage is dealt to the opponent, 0 to 1000.
	Damage int `json:"damage"`
	// Heal is restored to the player, 0 to 1000.
	Heal int `json:"heal"`
}

// Catalog is the decoded cards document of one master data version.
type Catalog struct {
	// Cards are the definitions in id order.
	Cards []Card
	byID  map[string]int
}

// UnmarshalJSON decodes and checks the catalog: a JSON array of cards with
// unique, valid ids and values in range.
func (c *Catalog) UnmarshalJSON(b []byte) error {
	var cards []Card
	if err := json.Unmarshal(b, &cards); err != nil {
		return err
	}
	if len(cards) == 0 {
		return errors.New("no cards")
	}
	slices.SortFunc(cards, func(a, b Card) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	byID := make(map[string]int, len(cards))
	for i, cd := range cards {
		if err := checkID(cd.ID); err != nil {
			return fmt.Errorf("card %d: %w", i, err)
		}
		if _, dup := byID[cd.ID]; dup {
			return fmt.Errorf("card %q defined twice", cd.ID)
		}
		if cd.Damage < 0 || cd.Damage > 1000 || cd.Heal < 0 || cd.Heal > 1000 {
			return fmt.Errorf("card %q: damage and heal must be 0 to 1000", cd.ID)
		}
		byID[cd.ID] = i
	}
	c.Cards, c.byID = cards, byID
	return nil
}

// Card returns the definition of id.
func (c *Catalog) Card(id string) (Card, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Card{}, false
	}
	return c.Cards[i], true
}

// LoadCatalog returns the catalog of a master data version, decoded once
// per version.
func LoadCatalog(md game.MasterData) (*Catalog, error) {
	c, err := game.Load[*Catalog](md, CardsDocument)
	if err != nil {
		return nil, fmt.Errorf("card catalog: %w", err)
	}
	return c, nil
}

// Params are the room parameters (JSON, optional).
type Params struct {
	// HP is each player's starting HP, 1 to 1000; 0 means 20.
	HP int `json:"hp"`
	// Hand is the hand size, 1 to 10; 0 means 4.
	Hand int `json:"hand"`
}

// State is a battle. Hands hold card ids; the definitions stay in the
// pinned master data.
type State struct {
	// HP is each seat's HP.
	HP [2]int `json:"hp"`
	// MaxHP is the starting HP, the most a heal restores to.
	MaxHP int `json:"max_hp"`
	// Hands are each seat's card ids. Apply replaces a hand, never changes
	// it in place.
	Hands [2][]string `json:"hands"`
	// Turn is the seat to play.
	Turn game.Seat `json:"turn"`
	// Joined says which seats have joined; the battle starts when both
	// have.
	Joined [2]bool `json:"joined"`
	// Started is set when both players have joined.
	Started bool `json:"started"`
	// Played counts the cards played.
	Played int `json:"played"`
}

// Result is the room's result, JSON-encoded in its End effect.
type Result struct {
	// Winner is the winning seat.
	Winner game.Seat `json:"winner"`
	// Reason is "hp" (the loser reached 0 HP) or "quit".
	Reason string `json:"reason"`
	// Played is the number of cards played.
	Played int `json:"played"`
}

// Def is the game's definition.
var Def = game.Def[State]{
	Name:     Name,
	Settings: game.Settings{MinPlayers: 2, MaxPlayers: 2, Spectators: true},
	Init:     Init,
	Apply:    Apply,
	Summary:  Summary,
}

// Summary describes a battle for an operator: HP, whose turn, cards
// played. Hands are secret and left out.
func Summary(st State) []byte {
	return mustJSON(struct {
		HP     [2]int    `json:"hp"`
		Turn   game.Seat `json:"turn"`
		Played int       `json:"played"`
	}{st.HP, st.Turn, st.Played})
}

// Init deals the hands from the pinned catalog with the room's RNG.
func Init(ctx *game.Context, setup game.Setup) (State, error) {
	p := Params{HP: 20, Hand: 4}
	if len(setup.Params) > 0 {
		if err := json.Unmarshal(setup.Params, &p); err != nil {
			return State{}, fmt.Errorf("params: %w", err)
		}
		if p.HP == 0 {
			p.HP = 20
		}
		if p.Hand == 0 {
			p.Hand = 4
		}
	}
	if p.HP < 1 || p.HP > 1000 || p.Hand < 1 || p.Hand > 10 {
		return State{}, fmt.Errorf("params: hp %d (1 to 1000), hand %d (1 to 10)", p.HP, p.Hand)
	}
	cat, err := LoadCatalog(ctx.Master())
	if err != nil {
		return State{}, err
	}
	st := State{HP: [2]int{p.HP, p.HP}, MaxHP: p.HP}
	for s := range st.Hands {
		hand := make([]string, p.Hand)
		for i := range hand {
			hand[i] = draw(ctx, cat)
		}
		st.Hands[s] = hand
	}
	return st, nil
}

func draw(ctx *game.Context, cat *Catalog) string {
	return cat.Cards[ctx.Rand().IntN(len(cat.Cards))].ID
}

// Apply applies one input.
func Apply(ctx *game.Context, st State, in game.Input) (State, []game.Effect, error) {
	fx := ctx.Effects()
	switch in.Kind {
	case game.InputJoined:
		st.Joined[in.Seat] = true
		if st.Started || !st.Joined[0] || !st.Joined[1] {
			return st, fx, nil
		}
		st.Started = true
		fx = append(fx, game.Broadcast("start", mustJSON(map[string]any{"hp": st.HP, "turn": st.Turn})))
		for s := range st.Hands {
			fx = append(fx, game.SendSeats("hand", mustJSON(st.Hands[s]), game.Seat(s)))
		}
		return st, fx, nil
	case game.InputReconnected:
		return st, append(fx, game.SendSeats("hand", mustJSON(st.Hands[in.Seat]), in.Seat)), nil
	case game.InputLeft:
		if in.Reason.Gone() {
			return st, end(fx, Result{Winner: 1 - in.Seat, Reason: "quit", Played: st.Played}), nil
		}
		return st, fx, nil
	case game.InputAction:
		return play(ctx, st, fx, in)
	}
	return st, fx, nil
}

func play(ctx *game.Context, st State, fx []game.Effect, in game.Input) (State, []game.Effect, error) {
	if in.Type != "play" {
		return st, nil, game.Rejectf("unknown action %q", in.Type)
	}
	if !st.Started {
		return st, nil, game.Reject("the battle has not started")
	}
	if in.Seat != st.Turn {
		return st, nil, game.Reject("not your turn")
	}
	id, err := DecodePlay(in.Payload)
	if err != nil {
		return st, nil, game.Rejectf("bad play: %v", err)
	}
	at := slices.Index(st.Hands[in.Seat], id)
	if at < 0 {
		return st, nil, game.Rejectf("card %q is not in your hand", id)
	}
	cat, err := LoadCatalog(ctx.Master())
	if err != nil {
		return st, nil, err // the pinned version lost its catalog: end the room
	}
	card, ok := cat.Card(id)
	if !ok {
		// The hand was dealt from this version: a state that names a card
		// it does not define is corrupt.
		return st, nil, fmt.Errorf("card %q in hand is not in master data %s", id, ctx.Master().Version())
	}

	me, foe := in.Seat, 1-in.Seat
	st.HP[foe] = max(st.HP[foe]-card.Damage, 0)
	st.HP[me] = min(st.HP[me]+card.Heal, st.MaxHP)
	// A new hand: the old one belongs to the state Apply was given.
	hand := make([]string, 0, len(st.Hands[me]))
	hand = append(append(hand, st.Hands[me][:at]...), st.Hands[me][at+1:]...)
	st.Hands[me] = append(hand, draw(ctx, cat))
	st.Played++
	st.Turn = foe

	fx = append(fx,
		game.Broadcast("played", mustJSON(played{Seat: me, Card: id, HP: st.HP})),
		game.SendSeats("hand", mustJSON(st.Hands[me]), me))
	if st.HP[foe] == 0 {
		return st, end(fx, Result{Winner: me, Reason: "hp", Played: st.Played}), nil
	}
	return st, fx, nil
}

// played is the "played" message.
type played struct {
	Seat game.Seat `json:"seat"`
	Card string    `json:"card"`
	HP   [2]int    `json:"hp"`
}

func end(fx []game.Effect, r Result) []game.Effect {
	b := mustJSON(r)
	return append(fx, game.Broadcast("over", b), game.End(b))
}

// maxPlayPayload bounds a play payload before it is decoded.
const maxPlayPayload = 128

// DecodePlay decodes a "play" payload from a client: exactly one JSON
// object {"card": "<id>"} with a valid card id.
func DecodePlay(b []byte) (string, error) {
	if len(b) > maxPlayPayload {
		return "", fmt.Errorf("payload of %d bytes, want at most %d", len(b), maxPlayPayload)
	}
	var raw struct {
		Card *string `json:"card"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return "", fmt.Errorf("want {\"card\": \"<id>\"}: %w", err)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return "", errors.New("want one JSON object and nothing after it")
	}
	if raw.Card == nil {
		return "", errors.New("card is missing")
	}
	if err := checkID(*raw.Card); err != nil {
		return "", err
	}
	return *raw.Card, nil
}

func checkID(id string) error {
	if id == "" || len(id) > 32 {
		return fmt.Errorf("card id %.40q: want 1 to 32 bytes", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("card id %q: %q is not a-z, 0-9, '_' or '-'", id, r)
		}
	}
	return nil
}

// mustJSON encodes values this package builds, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
