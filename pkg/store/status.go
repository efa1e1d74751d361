package store

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/containerd/errdefs"
)

// ErrRemoved is returned by a Status that belongs to a removed object.
var ErrRemoved = fmt.Errorf("the object was removed: %w", errdefs.ErrNotFound)

// Status is the mutable status of one sandbox or container: a value in memory and
// its JSON file. Update writes the file, then swaps the value, under one lock, so a
// reader never sees a status that a crash would lose. Once Remove is called nothing
// writes the file again: a call that raced the removal cannot bring the object's
// state directory back.
type Status[T any] struct {
	mu      sync.RWMutex
	path    string
	v       T
	removed bool
}

// NewStatus returns the status kept at path, starting at v (not written yet).
func NewStatus[T any](path string, v T) *Status[T] {
	return &Status[T]{path: path, v: v}
}

// Get returns a copy of the current value.
func (s *Status[T]) Get() T {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.v
}

// Update applies change to a copy of the value; when change reports a change, the
// copy is written and becomes the value. A failed write still changes the value in
// memory (what happened, happened: an exit must show even on a full disk) and is
// returned. After Remove, Update changes nothing and returns ErrRemoved.
func (s *Status[T]) Update(change func(v *T) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return ErrRemoved
	}
	next := s.v
	if !change(&next) {
		return nil
	}
	err := SaveJSON(s.path, next)
	s.v = next
	return err
}

// Set replaces the value (and writes it).
func (s *Status[T]) Set(v T) error {
	return s.Update(func(p *T) bool { *p = v; return true })
}

// Save writes the current value again (after recovery changed it in memory).
func (s *Status[T]) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return ErrRemoved
	}
	return SaveJSON(s.path, s.v)
}

// Remove marks the object removed and deletes the file. It is final.
func (s *Status[T]) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = true
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Removed reports whether Remove was called: an operation that waited for the
// object's lock checks it before acting.
func (s *Status[T]) Removed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.removed
}
