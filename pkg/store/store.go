package store

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
)

// Store is an in-memory index of objects by ID that also resolves unique ID prefixes
// (crictl and people pass truncated IDs).
type Store[T any] struct {
	mu    sync.RWMutex
	items map[string]T
}

// NewStore returns an empty store.
func NewStore[T any]() *Store[T] { return &Store[T]{items: map[string]T{}} }

// Put adds or replaces the object with this ID.
func (s *Store[T]) Put(id string, v T) {
	s.mu.Lock()
	s.items[id] = v
	s.mu.Unlock()
}

// Delete removes the object.
func (s *Store[T]) Delete(id string) {
	s.mu.Lock()
	delete(s.items, id)
	s.mu.Unlock()
}

// Get returns the object with exactly this ID.
func (s *Store[T]) Get(id string) (T, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.items[id]
	return v, ok
}

// Resolve returns the object whose ID is id or starts with it. No match is NotFound;
// several are InvalidArgument.
func (s *Store[T]) Resolve(id string) (T, string, error) {
	var zero T
	if id == "" {
		return zero, "", fmt.Errorf("empty ID: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.items[id]; ok {
		return v, id, nil
	}
	var found string
	for k := range s.items {
		if strings.HasPrefix(k, id) {
			if found != "" {
				return zero, "", fmt.Errorf("ID prefix %q matches more than one object: %w", id, errdefs.ErrInvalidArgument)
			}
			found = k
		}
	}
	if found == "" {
		return zero, "", fmt.Errorf("%q: %w", id, errdefs.ErrNotFound)
	}
	return s.items[found], found, nil
}

// List returns every object, ordered by ID.
func (s *Store[T]) List() []T {
	s.mu.RLock()
	ids := make([]string, 0, len(s.items))
	for k := range s.items {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	out := make([]T, 0, len(ids))
	for _, k := range ids {
		out = append(out, s.items[k])
	}
	s.mu.RUnlock()
	return out
}

// Len is the number of objects.
func (s *Store[T]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items)
}
