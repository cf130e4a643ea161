package app

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/driftline/driftline/"

// TestLayers holds the floors of STYLE.md: schemas imports nothing of ours;
// consumers stands on schemas; the stages stand on both and on internal/
// math, never on each other; only cmd and internal/app, internal/demo
// (process assembly) may import the stages; nothing imports cmd.
func TestLayers(t *testing.T) {
	allowed := map[string][]string{
		"schemas":           {},
		"consumers":         {"schemas", "consumers/"},
		"internal/checkfor": {},
		"features":          {"schemas", "consumers", "internal/logreg"},
		"monitors":          {"schemas", "consumers", "internal/accuracy", "internal/profile"},
		"trainers":          {"schemas", "consumers", "internal/accuracy", "internal/logreg", "internal/profile"},
		// internal math packages stand on schemas only.
		"internal/logreg":   {"schemas"},
		"internal/profile":  {"schemas"},
		"internal/accuracy": {},
	}
	root := filepath.Join("..", "..")
	imports := map[string]map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if strings.HasPrefix(p, module) {
				if imports[pkg] == nil {
					imports[pkg] = map[string]bool{}
				}
				imports[pkg][strings.TrimPrefix(p, module)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 5 {
		t.Fatalf("found imports for only %d packages; is the walk rooted at the module?", len(imports))
	}
	for pkg, deps := range imports {
		for dep := range deps {
			if strings.HasPrefix(dep, "cmd/") {
				t.Errorf("%s imports %s: nothing imports cmd", pkg, dep)
			}
			top := pkg
			if !strings.HasPrefix(pkg, "internal/") {
				top, _, _ = strings.Cut(pkg, "/")
			}
			rules, ok := allowed[top]
			if !ok {
				continue // cmd and process assembly wire everything
			}
			if !permitted(dep, rules) && !strings.HasPrefix(dep, top+"/") && dep != top {
				t.Errorf("%s imports %s: its floor allows only %v", pkg, dep, rules)
			}
		}
	}
}

func permitted(dep string, rules []string) bool {
	for _, r := range rules {
		if dep == r || (strings.HasSuffix(r, "/") && strings.HasPrefix(dep, r)) || strings.HasPrefix(dep, r+"/") {
			return true
		}
	}
	return false
}
