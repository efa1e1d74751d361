package e2e

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/registry"
)

var (
	reg            *registry.Registry
	passed, failed atomic.Int32
)

// TestMain serves the test images and prints the closing summary line.
func TestMain(m *testing.M) {
	code := run(m)
	fmt.Printf("e2e: %d passed, %d failed\n", passed.Load(), failed.Load())
	os.Exit(code)
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

// scenario runs one counted e2e scenario.
func scenario(t *testing.T, name string, fn func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		defer func() {
			if t.Failed() {
				failed.Add(1)
			} else if !t.Skipped() {
				passed.Add(1)
			}
		}()
		fn(t)
	})
}
