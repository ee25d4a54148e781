package taisen_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs enforces that every package says what it owns in a doc
// comment starting "Package <name> " (or "Command <name> " for main).
func TestPackageDocs(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." && (strings.HasPrefix(name, ".") || name == "gen" || name == "testdata" || name == "node_modules" || name == "taisen-data" || name == "bin") {
			return filepath.SkipDir
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		for pname, pkg := range pkgs {
			var doc string
			for _, f := range pkg.Files {
				if f.Doc != nil {
					doc += f.Doc.Text()
				}
			}
			want := "Package " + pname + " "
			if pname == "main" {
				want = "Command "
			}
			if !strings.Contains(doc, want) {
				t.Errorf("%s: package %s has no doc comment starting %q", path, pname, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
