package e2e

import (
	"os"
	"testing"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/registry"
	"github.com/keelson/keelson/test/tally"
)

var (
	reg    *registry.Registry
	counts tally.Tally
)

// TestMain serves the test images and prints the closing summary line.
func TestMain(m *testing.M) {
	code := harness.MainWithRegistry(m, func(r *registry.Registry) { reg = r })
	counts.Print("e2e")
	os.Exit(code)
}

// scenario runs one counted e2e scenario.
func scenario(t *testing.T, name string, fn func(t *testing.T)) { counts.Run(t, name, fn) }
