package config

import (
	"os"
	"testing"
)

// deploy/config.toml is the reference operators read; it must be exactly what
// `keelson config default` prints. Regenerate: go run ./cmd/agent config default > deploy/config.toml
func TestDeployConfigIsCurrent(t *testing.T) {
	want, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../deploy/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("deploy/config.toml is stale; regenerate it with: go run ./cmd/agent config default > deploy/config.toml")
	}
}
