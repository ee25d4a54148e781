package game

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// ErrNoDocument is returned (wrapped) by MasterData.Document for a name the
// version does not have.
var ErrNoDocument = errors.New("no such master data document")

// MasterData is one immutable version of the master data (card
// definitions, drop tables, balance numbers) that a room pinned at its
// creation. Implementations must be safe for concurrent use: many rooms
// read one version at once.
type MasterData interface {
	// Version identifies the version ("2026-11-30.1").
	Version() string
	// Document returns the named document's bytes, or an error wrapping
	// ErrNoDocument. The bytes are shared: never change them.
	Document(name string) ([]byte, error)
	// Value returns the value load computes from this version, computing
	// it once per key for the version's life (so rooms share one decoded
	// copy instead of decoding per input). Keys are compared with ==; an
	// error is returned, not cached.
	Value(key any, load func(MasterData) (any, error)) (any, error)
}

// loadKey keys Load's cache: one per document and target type.
type loadKey[T any] struct{ name string }

// Load returns the named document decoded from JSON into a T, decoding it
// once per version and sharing the result between every room that pinned
// the version: treat it as read-only.
func Load[T any](md MasterData, name string) (T, error) {
	v, err := md.Value(loadKey[T]{name}, func(md MasterData) (any, error) {
		b, err := md.Document(name)
		if err != nil {
			return nil, err
		}
		var t T
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("master data %s document %q: %w", md.Version(), name, err)
		}
		return t, nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

// Static is an in-memory MasterData version: a set of named documents.
type Static struct {
	version string
	docs    map[string][]byte

	mu    sync.Mutex
	cache map[any]any // guarded by mu
}

var _ MasterData = (*Static)(nil)

// NewStatic returns a version named version holding docs (copied).
func NewStatic(version string, docs map[string][]byte) *Static {
	s := &Static{version: version, docs: make(map[string][]byte, len(docs)), cache: map[any]any{}}
	for k, v := range docs {
		s.docs[k] = slices.Clone(v)
	}
	return s
}

// Version implements MasterData.
func (s *Static) Version() string { return s.version }

// Document implements MasterData.
func (s *Static) Document(name string) ([]byte, error) {
	b, ok := s.docs[name]
	if !ok {
		return nil, fmt.Errorf("master data %s: document %q: %w", s.version, name, ErrNoDocument)
	}
	return b, nil
}

// Names returns the version's document names, sorted.
func (s *Static) Names() []string { return slices.Sorted(maps.Keys(s.docs)) }

// Value implements MasterData. Concurrent first calls for one key may run
// load more than once; one result is kept.
func (s *Static) Value(key any, load func(MasterData) (any, error)) (any, error) {
	s.mu.Lock()
	v, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := load(s)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if old, ok := s.cache[key]; ok {
		v = old
	} else {
		s.cache[key] = v
	}
	s.mu.Unlock()
	return v, nil
}

// noMaster is the master data of a room created without any.
type noMaster struct{}

func (noMaster) Version() string { return "" }

func (noMaster) Document(name string) ([]byte, error) {
	return nil, fmt.Errorf("no master data pinned: document %q: %w", name, ErrNoDocument)
}

func (m noMaster) Value(_ any, load func(MasterData) (any, error)) (any, error) { return load(m) }
