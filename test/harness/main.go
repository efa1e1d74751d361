package harness

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/keelson/keelson/test/registry"
)

// MainWithRegistry runs a test package as Main does, with the standard test images
// served (as root) by a registry handed to use before the tests run.
func MainWithRegistry(m *testing.M, use func(*registry.Registry)) int {
	return Main(func() int {
		if os.Geteuid() == 0 {
			r, err := registry.StartWithTestImages()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer r.Close()
			use(r)
		}
		return m.Run()
	})
}

// Tally counts a suite's scenarios for its closing line (`e2e: N passed, N failed`).
type Tally struct{ passed, failed atomic.Int32 }

// Run runs fn as the subtest name and counts how it ended (skips are not counted).
func (c *Tally) Run(t *testing.T, name string, fn func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		defer func() {
			if t.Failed() {
				c.failed.Add(1)
			} else if !t.Skipped() {
				c.passed.Add(1)
			}
		}()
		fn(t)
	})
}

// Print prints the closing line, when any scenario ran.
func (c *Tally) Print(suite string) {
	if c.passed.Load()+c.failed.Load() > 0 {
		fmt.Printf("%s: %d passed, %d failed\n", suite, c.passed.Load(), c.failed.Load())
	}
}
