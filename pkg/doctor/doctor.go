// Package doctor audits a node for what keelson may have left behind after crashes,
// bugs or manual meddling — network namespaces, CNI attachments, IPs in the IPAM
// store, iptables rules, cgroups, containerd objects, stale files — and, when asked,
// removes what no sandbox or container owns. Nothing any CRI runtime ships does this.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/mounts"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/runtime"
)

// Finding is one thing no sandbox or container owns.
type Finding struct {
	Kind string // netns, cni, ip, iptables, cgroup, container, task, shim, snapshot, lease, file
	What string
	fix  func(ctx context.Context) error
}

func (f Finding) String() string { return f.Kind + ": " + f.What }

// Node is what the doctor looks at.
type Node struct {
	Conn        *runtime.Conn
	Client      *containerd.Client
	Snapshotter string
	// ShimMinAge: younger shims without a task are not reported (keelson may be
	// creating their task right now).
	ShimMinAge time.Duration
	Network    *cni.Manager
	RootDir    string
	StateDir   string
}

// idRE matches keelson's object IDs.
var idRE = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// known returns the IDs of every sandbox and container keelson has a record of.
func (n *Node) known(ctx context.Context) (map[string]bool, error) {
	list, err := n.Client.Containers(ctx, `labels."io.keelson.kind"`)
	if err != nil {
		return nil, fmt.Errorf("listing keelson's containerd records: %w", err)
	}
	ids := map[string]bool{}
	for _, c := range list {
		ids[c.ID()] = true
	}
	return ids, nil
}

// Audit lists what nothing owns.
func (n *Node) Audit(ctx context.Context) ([]Finding, error) {
	known, err := n.known(ctx)
	if err != nil {
		return nil, err
	}
	var out []Finding
	add := func(f Finding) { out = append(out, f) }

	// containerd objects without a keelson record, or orphaned by a vanished sandbox.
	all, err := n.Client.Containers(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		labels, _ := c.Labels(ctx)
		sandbox := labels["io.keelson.sandbox"]
		switch {
		case labels["io.keelson.kind"] == "":
			add(Finding{Kind: "container", What: c.ID() + " (no keelson label)", fix: deleteContainer(c)})
		case sandbox != "" && !known[sandbox]:
			add(Finding{Kind: "container", What: c.ID() + " (its sandbox " + short(sandbox) + " is gone)", fix: deleteContainer(c)})
		}
	}
	tasks, err := n.Client.TaskService().List(ctx, nil)
	if err == nil {
		for _, t := range tasks.Tasks {
			if !known[t.ID] {
				id := t.ID
				add(Finding{Kind: "task", What: id, fix: func(ctx context.Context) error {
					_, err := n.Client.TaskService().Delete(ctx, deleteTaskRequest(id))
					return ignoreNotFound(err)
				}})
			}
		}
	}
	if shims, err := n.Conn.OrphanShims(ctx, n.ShimMinAge); err == nil {
		orphan := map[int]bool{}
		for _, sh := range shims {
			orphan[sh.Pid] = true
			add(Finding{Kind: "shim", What: fmt.Sprintf("pid %d serving %s, no task behind it", sh.Pid, short(sh.ID)), fix: func(context.Context) error {
				if err := syscall.Kill(sh.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					return err
				}
				return nil
			}})
		}
		// A shim of a pod (or task) keelson has no record of, still running
		// something: what containerd lost of a creation cut short.
		for _, sh := range runtime.Shims(n.Conn.Namespace, n.Conn.Address) {
			if !orphan[sh.Pid] && !known[sh.ID] && time.Since(sh.Started) >= n.ShimMinAge {
				group := sh.ID
				add(Finding{Kind: "shim", What: fmt.Sprintf("pid %d serving %s, which keelson has no record of", sh.Pid, short(group)), fix: func(context.Context) error {
					n.Conn.EndPodShim(group)
					return nil
				}})
			}
		}
	}
	sn := n.Client.SnapshotService(n.Snapshotter)
	_ = sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		owner := info.Labels[runtime.LabelImageVolumeOf] // an image volume's view belongs to its container
		if info.Kind != snapshots.KindCommitted && !known[info.Name] && (owner == "" || !known[owner]) {
			name := info.Name
			add(Finding{Kind: "snapshot", What: fmt.Sprintf("%s (%v)", name, info.Kind), fix: func(ctx context.Context) error {
				if owner != "" {
					dir := runtime.ImageVolumeDir(n.StateDir, name)
					if err := mount.UnmountAll(dir, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
					_ = os.Remove(dir)
				}
				return ignoreNotFound(sn.Remove(ctx, name))
			}})
		}
		return nil
	})
	if ls, err := n.Client.LeasesService().List(ctx); err == nil {
		for _, l := range ls {
			// keelson's own leases live for seconds; an old one is left over.
			if time.Since(l.CreatedAt) > 10*time.Minute {
				lease := l
				add(Finding{Kind: "lease", What: fmt.Sprintf("%s (created %s)", lease.ID, lease.CreatedAt.Format(time.RFC3339)), fix: func(ctx context.Context) error {
					return ignoreNotFound(n.Client.LeasesService().Delete(ctx, lease, leases.SynchronousDelete))
				}})
			}
		}
	}

	// Networking: CNI attachments first (their DEL releases IPs and rules).
	if orphans, err := n.Network.Orphans(known); err == nil {
		for _, o := range orphans {
			add(Finding{Kind: "cni", What: o})
		}
		if len(orphans) > 0 {
			out[len(out)-1].fix = func(ctx context.Context) error {
				n.Network.GC(ctx, known)
				return errors.Join(n.Network.Recover(ctx, known)...)
			}
		}
	}
	netnsDir := filepath.Join(n.StateDir, "netns")
	for _, e := range readDir(netnsDir) {
		if !known[e] {
			p := filepath.Join(netnsDir, e)
			add(Finding{Kind: "netns", What: p, fix: func(context.Context) error { return netns.Remove(p) }})
		}
	}
	for _, dir := range n.Network.IPAMDirs() {
		for _, e := range readDir(dir) {
			p := filepath.Join(dir, e)
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			owner := idRE.FindString(string(b))
			if owner != "" && !known[owner] {
				add(Finding{Kind: "ip", What: fmt.Sprintf("%s held by %s in %s", e, short(owner), dir), fix: func(context.Context) error { return os.Remove(p) }})
			}
		}
	}
	networkName := ""
	if network, _ := n.Network.Network(); network != nil {
		networkName = network.Name
	}
	if networkName != "" {
		byID := map[string][]cni.Rule{}
		for _, r := range cni.TaggedRules(networkName, func(id string) bool { return !known[id] }) {
			byID[r.ID] = append(byID[r.ID], r)
		}
		for id, rules := range byID {
			add(Finding{Kind: "iptables", What: fmt.Sprintf("%d rules of %s on network %s", len(rules), short(id), networkName), fix: func(ctx context.Context) error {
				return cni.DeleteRules(ctx, rules)
			}})
		}
	}

	// cgroups named by IDs keelson no longer knows.
	for _, cg := range orphanCgroups(known) {
		add(cg)
	}

	// Files.
	for _, dir := range []string{
		filepath.Join(n.StateDir, "sandboxes"), filepath.Join(n.RootDir, "sandboxes"),
		filepath.Join(n.StateDir, "containers"),
	} {
		for _, e := range readDir(dir) {
			if !known[e] {
				p := filepath.Join(dir, e)
				add(Finding{Kind: "file", What: p, fix: func(context.Context) error {
					mounts.UnmountUnder(p)
					return os.RemoveAll(p)
				}})
			}
		}
	}
	return out, nil
}

// Fix removes what the findings name, in the order found (CNI before netns).
func Fix(ctx context.Context, findings []Finding) []error {
	var errs []error
	for _, f := range findings {
		if f.fix == nil {
			continue
		}
		if err := f.fix(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
	}
	return errs
}

func deleteContainer(c containerd.Container) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if t, err := c.Task(ctx, nil); err == nil {
			if _, err := t.Delete(ctx, containerd.WithProcessKill); ignoreNotFound(err) != nil {
				return err
			}
		}
		return ignoreNotFound(c.Delete(ctx, containerd.WithSnapshotCleanup))
	}
}

func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func readDir(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			out = append(out, e.Name())
		}
	}
	return out
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
