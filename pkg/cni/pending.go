package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/store"
)

// A pending record is written before CNI ADD runs and removed once the sandbox is
// durable (its containerd record exists) or its DEL succeeded. It holds the pod's
// arguments and the exact network config ADD was given, so a restart can run the
// matching DEL for an ADD a crash cut short: libcni caches an attachment only after
// ADD succeeds, and host-local may already have taken an IP, the bridge and portmap
// plugins their rules.
type pending struct {
	Pod     Pod             `json:"pod"`
	Network json.RawMessage `json:"network"` // the conflist as ADD got it
}

func (m *Manager) pendingPath(id string) string { return filepath.Join(m.opts.PendingDir, id+".json") }

func (m *Manager) savePending(pod Pod, network *libcni.NetworkConfigList) error {
	if m.opts.PendingDir == "" {
		return nil
	}
	b, err := json.Marshal(pending{Pod: pod, Network: network.Bytes})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.opts.PendingDir, 0o700); err != nil {
		return err
	}
	// Not fsynced: it guards against keelson dying, and a reboot takes the netns
	// (and the veth) anyway.
	return store.WriteFileReplace(m.pendingPath(pod.ID), b, 0o600)
}

func (m *Manager) readPending(id string) (*pending, *libcni.NetworkConfigList, error) {
	b, err := os.ReadFile(m.pendingPath(id))
	if err != nil {
		return nil, nil, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, err
	}
	network, err := libcni.NetworkConfFromBytes(p.Network)
	if err != nil {
		return &p, nil, err
	}
	return &p, network, nil
}

// pendingNetwork is the config a pending ADD of id was given, if recorded.
func (m *Manager) pendingNetwork(id string) *libcni.NetworkConfigList {
	if m.opts.PendingDir == "" {
		return nil
	}
	_, network, err := m.readPending(id)
	if err != nil {
		return nil
	}
	return network
}

// Forget drops the pending record of id: the sandbox is durable now, or gone.
func (m *Manager) Forget(id string) {
	if m.opts.PendingDir == "" {
		return
	}
	if err := os.Remove(m.pendingPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.ErrorS(err, "Removing pending CNI record", "podSandboxID", id)
	}
}

// Pending lists the sandbox IDs with a pending record: creations in flight, or cut
// short by a crash.
func (m *Manager) Pending() []string {
	if m.opts.PendingDir == "" {
		return nil
	}
	entries, _ := os.ReadDir(m.opts.PendingDir)
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(id, ".") {
			ids = append(ids, id)
		}
	}
	return ids
}

// Recover settles the pending records left by a previous run: a sandbox that exists
// (known) keeps its network and loses the record; for any other, the DEL matching
// its ADD runs with the recorded config and arguments. It returns what it could not
// settle.
func (m *Manager) Recover(ctx context.Context, known map[string]bool) []error {
	// A crash inside savePending leaves its temporary file: ADD had not run yet.
	if tmps, _ := filepath.Glob(filepath.Join(m.opts.PendingDir, ".*.tmp-*")); len(tmps) > 0 {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	var errs []error
	for _, id := range m.Pending() {
		if known[id] {
			m.Forget(id)
			continue
		}
		if err := m.delPending(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		klog.InfoS("CNI: released the network of a sandbox whose creation was cut short", "podSandboxID", id)
	}
	return errs
}

func (m *Manager) delPending(ctx context.Context, id string) error {
	p, network, err := m.readPending(id)
	if err != nil {
		if p == nil {
			// Unreadable: a torn write from a crash inside savePending, before ADD ran.
			m.Forget(id)
			return nil
		}
		return fmt.Errorf("pending CNI record of %s: %w", id, err)
	}
	rt := p.Pod.runtimeConf()
	if _, err := os.Stat(rt.NetNS); err != nil {
		rt.NetNS = ""
	}
	if err := m.cni.DelNetworkList(ctx, network, rt); err != nil {
		return fmt.Errorf("CNI DEL of the cut-short attachment of %s on network %q: %w", id, network.Name, err)
	}
	m.Forget(id)
	return nil
}

// Release frees by hand what CNI DEL would have freed, when DEL keeps failing on
// input that cannot change (a config that no longer parses, a plugin that always
// errors): the pod's IP reservations in host-local's store, the iptables rules the
// plugins tagged with its ID, and its cached and pending records. The veth goes with
// the netns when the sandbox is removed. It returns what it could not release.
func (m *Manager) Release(ctx context.Context, pod Pod) []string {
	var left []string
	networks := map[string]*libcni.NetworkConfigList{}
	if attachments, err := m.cni.GetCachedAttachments(pod.ID); err == nil {
		for _, a := range attachments {
			if n, err := libcni.NetworkConfFromBytes(a.Config); err == nil {
				networks[n.Name] = n
			}
		}
	}
	if n := m.pendingNetwork(pod.ID); n != nil {
		networks[n.Name] = n
	}
	if n, _ := m.Network(); n != nil {
		networks[n.Name] = n
	}
	for _, n := range networks {
		for _, dir := range ipamDirs(n) {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				p := filepath.Join(dir, e.Name())
				if ipOwner(p) != pod.ID {
					continue
				}
				if err := os.Remove(p); err != nil {
					left = append(left, fmt.Sprintf("IP %s in %s: %v", e.Name(), dir, err))
				}
			}
		}
	}
	if err := DeleteRules(ctx, TaggedRules("", func(id string) bool { return id == pod.ID })); err != nil {
		left = append(left, fmt.Sprintf("iptables rules: %v", err))
	}
	results, _ := filepath.Glob(filepath.Join(m.opts.CacheDir, "results", "*-"+pod.ID+"-*"))
	for _, r := range results {
		if err := os.Remove(r); err != nil {
			left = append(left, fmt.Sprintf("CNI cache %s: %v", r, err))
		}
	}
	m.Forget(pod.ID)
	return left
}

// ipOwner reads the container ID a host-local reservation file names ("" if none).
func ipOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 4096 {
		return ""
	}
	owner, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(owner)
}
