package gametest

import (
	"fmt"

	"github.com/taisen-dev/taisen/game"
)

// Versions is an in-memory master data store: versions are pushed, one is
// active, and a room pins whichever is active when it is created
// (Config{Master: v.Active()}), keeping it when another is activated.
// The zero value is empty.
type Versions struct {
	versions map[string]*game.Static
	active   string
}

// Push adds a version with its documents; a version id is pushed once.
func (v *Versions) Push(version string, docs map[string][]byte) error {
	if version == "" {
		return fmt.Errorf("push master data: empty version")
	}
	if _, ok := v.versions[version]; ok {
		return fmt.Errorf("push master data %s: version exists", version)
	}
	if v.versions == nil {
		v.versions = map[string]*game.Static{}
	}
	v.versions[version] = game.NewStatic(version, docs)
	return nil
}

// Activate makes a pushed version the one new rooms pin.
func (v *Versions) Activate(version string) error {
	if _, ok := v.versions[version]; !ok {
		return fmt.Errorf("activate master data %s: no such version", version)
	}
	v.active = version
	return nil
}

// Active returns the active version, or nil when none is active.
func (v *Versions) Active() game.MasterData {
	if md, ok := v.versions[v.active]; ok {
		return md
	}
	return nil
}

// Get returns a pushed version.
func (v *Versions) Get(version string) (game.MasterData, bool) {
	md, ok := v.versions[version]
	return md, ok
}
