package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/registry"
)

// reg is the registry shared by the tests that need the standard images only.
var reg *registry.Registry

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return harness.Main(func() int { return runWithRegistry(m) })
}

func runWithRegistry(m *testing.M) int {
	if os.Geteuid() == 0 {
		r, err := registry.StartWithTestImages()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer r.Close()
		reg = r
	}
	return m.Run()
}
