package store

import (
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
)

// Names reserves unique names (a pod's name_namespace_uid_attempt, a container's
// name_pod_namespace_uid_attempt) for object IDs, so a second create with the same
// name fails clearly instead of making a twin.
type Names struct {
	mu sync.Mutex
	m  map[string]string // name → id
}

// Reserve gives name to id. Reserving a name id already holds is fine.
func (n *Names) Reserve(name, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]string{}
	}
	if holder, ok := n.m[name]; ok && holder != id {
		return fmt.Errorf("name %q is reserved for %q: %w", name, holder, errdefs.ErrAlreadyExists)
	}
	n.m[name] = id
	return nil
}

// Release frees name, if id holds it.
func (n *Names) Release(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m[name] == id {
		delete(n.m, name)
	}
}

// Holder returns the id holding name, or "".
func (n *Names) Holder(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[name]
}
