package sim

import (
	"bytes"
	"embed"
	"fmt"
	"sort"
	"strings"

	"github.com/coreattn/coreattn/disagg"
)

//go:embed profiles/*.json
var profileFS embed.FS

// DefaultProfile names the built-in profile the paper's settings use: FA2
// bf16 varlen on one H100/H200, provisional (derived from published
// measurements, see scripts/fa2_provisional_profile.py) until
// scripts/fa2_profile.py's GPU measurement replaces it.
const DefaultProfile = "fa2-h100-bf16-provisional"

// ProfileNames lists the built-in profiles.
func ProfileNames() []string {
	ents, _ := profileFS.ReadDir("profiles")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(out)
	return out
}

// BuiltinProfile returns a built-in profile by name.
func BuiltinProfile(name string) (*disagg.Profile, error) {
	b, err := profileFS.ReadFile("profiles/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("disagg: unknown built-in profile %q (built in: %s)", name, strings.Join(ProfileNames(), ", "))
	}
	return disagg.ReadProfile(bytes.NewReader(b))
}
