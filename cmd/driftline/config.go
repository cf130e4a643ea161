package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/driftline/driftline/internal/app"
)

// runConfigFile is what `driftline run --config FILE` read: the process
// configuration (internal/app.Config, every section with its YAML keys) and
// which keys the file set, so that a flag fills only what the file left out.
type runConfigFile struct {
	cfg  app.Config
	keys map[string]bool // dotted paths the file set: "features.max_keys"
}

// loadRunConfig decodes a YAML process configuration strictly: an unknown
// key is an error naming it, so a misspelt setting never passes silently.
// Secrets (SASL password, ClickHouse and webhook secrets) stay out of it:
// the Kafka password has no YAML key, and the DSN and webhook URL are best
// given through their environment variables. An empty path is no file.
func loadRunConfig(path string) (runConfigFile, error) {
	f := runConfigFile{keys: map[string]bool{}}
	if path == "" {
		return f, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("%w: cannot read --config: %v", errUsage, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f.cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return f, nil // an empty file sets nothing
		}
		return f, fmt.Errorf("%w: --config %s: %v", errUsage, path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return f, fmt.Errorf("%w: --config %s: %v", errUsage, path, err)
	}
	if len(doc.Content) > 0 {
		collectKeys(doc.Content[0], "", f.keys)
	}
	return f, nil
}

// collectKeys records the dotted path of every mapping key under n.
func collectKeys(n *yaml.Node, prefix string, into map[string]bool) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := prefix + n.Content[i].Value
		into[k] = true
		collectKeys(n.Content[i+1], k+".", into)
	}
}

// flagOrFile decides, per setting, whether a flag's value is used: when the
// flag was given on the command line, or when the file did not set the key.
type flagOrFile struct {
	given map[string]bool
	file  runConfigFile
}

func newFlagOrFile(fs *flag.FlagSet, file runConfigFile) flagOrFile {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return flagOrFile{given: given, file: file}
}

func (p flagOrFile) use(flagName, key string) bool {
	return p.given[flagName] || !p.file.keys[key]
}

// set assigns v to *dst unless the file set key and the flag was not given.
func set[T any](p flagOrFile, dst *T, flagName, key string, v T) {
	if p.use(flagName, key) {
		*dst = v
	}
}

// secret picks a secret: the flag when given, else its environment
// variable's value when set, else the file's value, else the flag's default.
func (p flagOrFile) secret(dst *string, flagName, key, flagValue, envValue string) {
	switch {
	case p.given[flagName]:
		*dst = flagValue
	case envValue != "":
		*dst = envValue
	case p.file.keys[key]:
	default:
		*dst = flagValue
	}
}
