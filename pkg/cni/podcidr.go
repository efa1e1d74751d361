package cni

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/keelson/keelson/pkg/store"
)

// SetPodCIDR records the node's pod CIDR(s) (comma-separated for dual stack), as
// kubelet reports them through UpdateRuntimeConfig, and persists them.
func (m *Manager) SetPodCIDR(cidrs string) error {
	for _, c := range strings.Split(cidrs, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return fmt.Errorf("pod CIDR %q: %v: %w", c, err, errdefs.ErrInvalidArgument)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.podCIDR == cidrs {
		return nil
	}
	if err := m.renderTemplate(cidrs); err != nil {
		return err
	}
	if m.opts.PodCIDRFile != "" {
		if err := store.WriteFileAtomic(m.opts.PodCIDRFile, []byte(cidrs+"\n"), 0o644); err != nil {
			return fmt.Errorf("persisting pod CIDR: %w", err)
		}
	}
	m.podCIDR = cidrs
	return nil
}

// PodCIDR is the last pod CIDR kubelet reported ("" if none).
func (m *Manager) PodCIDR() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.podCIDR
}

func readPodCIDR(file string) string {
	if file == "" {
		return ""
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
