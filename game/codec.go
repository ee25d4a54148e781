package game

import "encoding/json"

// Codec turns a game's state into bytes and back, for the snapshots the
// runtime stores and for comparing states in tests. Unmarshal(Marshal(s))
// must give a state that behaves exactly like s, and Marshal must be
// deterministic (equal states, equal bytes).
type Codec[S any] interface {
	// Marshal encodes a state.
	Marshal(S) ([]byte, error)
	// Unmarshal decodes what Marshal encoded.
	Unmarshal([]byte) (S, error)
}

// JSONCodec encodes a state with encoding/json: exported fields only, map
// keys sorted. It is the codec of a Def without one; a state with
// unexported fields, interfaces or NaN floats needs its own Codec.
type JSONCodec[S any] struct{}

// Marshal implements Codec.
func (JSONCodec[S]) Marshal(s S) ([]byte, error) { return json.Marshal(s) }

// Unmarshal implements Codec.
func (JSONCodec[S]) Unmarshal(b []byte) (S, error) {
	var s S
	err := json.Unmarshal(b, &s)
	return s, err
}
