package game

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Registry maps names to games. The zero value is empty and ready; it is
// safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	games map[string]Game // guarded by mu
}

// Register adds g under its name; a second game with the same name is an
// error.
func (r *Registry) Register(g Game) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.games[g.Name()]; ok {
		return fmt.Errorf("register game %q: already registered", g.Name())
	}
	if r.games == nil {
		r.games = map[string]Game{}
	}
	r.games[g.Name()] = g
	return nil
}

// Lookup returns the game registered under name.
func (r *Registry) Lookup(name string) (Game, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g, ok := r.games[name]
	return g, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.games))
}
