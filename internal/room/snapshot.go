package room

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/taisen-dev/taisen/game"
)

// maxSnapshot bounds a decoded snapshot (64 MiB).
const maxSnapshot = 64 << 20

var (
	zOnce sync.Once
	zEnc  *zstd.Encoder
	zDec  *zstd.Decoder
)

func codecs() (*zstd.Encoder, *zstd.Decoder) {
	zOnce.Do(func() {
		zEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		zDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxSnapshot))
	})
	return zEnc, zDec
}

// EncodeSnapshot encodes a game.Snapshot as zstd-compressed JSON. The
// snapshot holds no master data, only the version it pinned.
func EncodeSnapshot(s game.Snapshot) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	enc, _ := codecs()
	return enc.EncodeAll(b, nil), nil
}

// DecodeSnapshot reverses EncodeSnapshot.
func DecodeSnapshot(z []byte) (game.Snapshot, error) {
	_, dec := codecs()
	b, err := dec.DecodeAll(z, nil)
	if err != nil {
		return game.Snapshot{}, fmt.Errorf("decode snapshot: %w", err)
	}
	var s game.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return game.Snapshot{}, fmt.Errorf("decode snapshot: %w", err)
	}
	return s, nil
}
