// Package tally counts a test suite's scenarios for its closing line
// (`e2e: N passed, N failed`), which CI and people read first.
package tally

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// Tally counts scenarios; OnFail, when set, runs in a scenario that failed (to log
// what explains it).
type Tally struct {
	OnFail         func(t *testing.T)
	passed, failed atomic.Int32
}

// Run runs fn as the subtest name and counts how it ended (skips are not counted).
func (c *Tally) Run(t *testing.T, name string, fn func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		defer func() {
			if t.Failed() {
				c.failed.Add(1)
				if c.OnFail != nil {
					c.OnFail(t)
				}
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
