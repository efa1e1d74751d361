// Package undo is the one rollback style of keelson's creations: each step that
// creates something pushes how to take it away; when a later step fails, the steps
// are undone newest first on a fresh, bounded context (the request's may be gone).
package undo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Timeout bounds a whole rollback.
const Timeout = 2 * time.Minute

// Stack is a list of undo steps; the zero value is empty and ready.
type Stack struct {
	steps []step
}

type step struct {
	what string
	fn   func(ctx context.Context) error
}

// Push records how to undo the step just taken.
func (s *Stack) Push(what string, fn func(ctx context.Context) error) {
	s.steps = append(s.steps, step{what, fn})
}

// Run undoes every step, newest first, each even when an earlier one failed, and
// returns the failures. kv are logged with each failure (the object's ID).
func (s *Stack) Run(kv ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		st := s.steps[i]
		if err := st.fn(ctx); err != nil {
			klog.ErrorS(err, "Undo step failed", append([]any{"step", st.what}, kv...)...)
			errs = append(errs, fmt.Errorf("%s: %w", st.what, err))
		}
	}
	s.steps = nil
	return errors.Join(errs...)
}
