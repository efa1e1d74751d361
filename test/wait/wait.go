// Package wait is the polling helper of keelson's end-to-end and node tests.
package wait

import (
	"testing"
	"time"
)

// For polls ok every quarter second until it returns nil, and fails the test with
// ok's last error when timeout passes first.
func For(t testing.TB, what string, timeout time.Duration, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ok(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}
