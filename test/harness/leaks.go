package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/keelson/keelson/pkg/runtime"
)

// CheckNoLeaks fails the test if anything a pod or container left behind is still
// there: network namespaces, mounts, IPs in host-local's store, iptables rules of the
// instance's network, containerd containers / tasks / active snapshots / leases,
// cgroups under the instance's cgroup parent, or files under keelson's sandbox dirs.
// Call it after every pod the test made was removed.
func (k *Keelson) CheckNoLeaks(t testing.TB) {
	t.Helper()
	for _, problem := range k.Leaks(t) {
		t.Error("leak: " + problem)
	}
}

// Leaks lists what CheckNoLeaks would report.
func (k *Keelson) Leaks(t testing.TB) []string {
	t.Helper()
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }

	for _, dir := range []string{
		filepath.Join(k.StateDir, "netns"),
		filepath.Join(k.StateDir, "sandboxes"),
		filepath.Join(k.RootDir, "sandboxes"),
		filepath.Join(k.StateDir, "containers"),
		filepath.Join(k.RootDir, "containers"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			add("%s left in %s", e.Name(), dir)
		}
	}
	for _, m := range MountsUnder(k.Dir) {
		// containerd's own state mounts are not pods'; anything else is.
		add("mount %s", m)
	}
	// host-local keeps one file per allocated IP (plus its bookkeeping files).
	ipamDir := filepath.Join(k.Dir, "ipam", k.Bridge)
	entries, _ := os.ReadDir(ipamDir)
	for _, e := range entries {
		if e.Name() == "lock" || strings.HasPrefix(e.Name(), "last_reserved_ip") {
			continue
		}
		add("IP %s still allocated in %s", e.Name(), ipamDir)
	}
	for _, table := range []string{"nat", "filter"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			add("iptables-save -t %s: %v", table, err)
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, fmt.Sprintf("name: \"%s\"", k.Bridge)) || strings.Contains(line, fmt.Sprintf("name: \\\"%s\\\"", k.Bridge)) {
				add("iptables %s rule: %s", table, line)
			}
		}
	}
	if _, err := os.Stat(k.ContainerdSocket); err == nil {
		cl := k.ContainerdClient(t)
		ctx := Ctx(t)
		if cs, err := cl.Containers(ctx); err == nil {
			for _, c := range cs {
				add("containerd container %s", c.ID())
			}
		}
		if ts, err := cl.TaskService().List(ctx, nil); err == nil {
			for _, task := range ts.Tasks {
				add("containerd task %s", task.ID)
			}
		}
		if err := cl.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			if info.Kind != snapshots.KindCommitted {
				add("containerd %v snapshot %s", info.Kind, info.Name)
			}
			return nil
		}); err != nil {
			add("walking snapshots: %v", err)
		}
		if ls, err := cl.LeasesService().List(ctx); err == nil {
			for _, l := range ls {
				add("containerd lease %s", l.ID)
			}
		}
	}
	// A shim exits a moment after its last task is deleted.
	var shims []runtime.Shim
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if shims = runtime.Shims("keelson", k.ContainerdSocket); len(shims) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, sh := range shims {
		add("shim process %d (id %s) still running", sh.Pid, sh.ID)
	}
	if pending, _ := os.ReadDir(filepath.Join(k.RootDir, "cni", "pending")); len(pending) > 0 {
		for _, e := range pending {
			add("pending CNI record %s", e.Name())
		}
	}
	if k.CgroupParent != "" {
		for _, c := range CgroupControllers() {
			dir := filepath.Join("/sys/fs/cgroup", c, k.CgroupParent)
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.IsDir() {
					add("cgroup %s/%s", dir, e.Name())
				}
			}
		}
	}
	return out
}
