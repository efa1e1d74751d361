package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/oci"
)

// Shim is a running containerd shim process.
type Shim struct {
	Pid       int
	ID        string // the task, or the task group (a pod's sandbox ID), it serves
	Namespace string
	Address   string // the containerd it reports to
	Started   time.Time
}

// Shims lists the shim processes serving namespace for the containerd at address,
// from /proc (a shim can outlive everything containerd knows of it).
func Shims(namespace, address string) []Shim {
	entries, _ := os.ReadDir("/proc")
	var out []Shim
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		sh := Shim{Pid: pid, Started: processStart(pid)}
		for i := 1; i+1 < len(args); i++ {
			switch strings.TrimLeft(args[i], "-") {
			case "namespace":
				sh.Namespace = args[i+1]
			case "id":
				sh.ID = args[i+1]
			case "address":
				sh.Address = args[i+1]
			}
		}
		if sh.Namespace == namespace && sh.Address == address && sh.ID != "" {
			out = append(out, sh)
		}
	}
	return out
}

// OrphanShims lists the shims of c's namespace that serve no task. A shim serves the
// tasks whose init process is its child (it is their subreaper), grouped pods
// included; a shim with any child is kept, as is the shim of an exited task not yet
// deleted (named by the task or its group), so only shims that certainly serve
// nothing are listed. Only shims older than minAge
// count, so that a task being created (its shim up, the task not yet listed) is not
// taken for an orphan.
func (c *Conn) OrphanShims(ctx context.Context, minAge time.Duration) ([]Shim, error) {
	shims := Shims(c.Namespace, c.Address)
	if len(shims) == 0 {
		return nil, nil
	}
	tasks, err := c.Client.TaskService().List(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	parents := parentPids()
	serving := map[int]bool{} // shims that are some process's parent
	for _, ppid := range parents {
		serving[ppid] = true
	}
	// An exited task not yet deleted has no process, but its shim — named by the task
	// or by the task's group (its pod) — still serves it.
	kept := map[string]bool{}
	for _, t := range tasks.Tasks {
		if _, ok := parents[int(t.Pid)]; t.Pid != 0 && ok {
			continue
		}
		group, err := c.shimGroup(ctx, t.ID)
		if err != nil {
			return nil, nil // its shim cannot be told apart: keep them all
		}
		kept[t.ID], kept[group] = true, true
	}
	var out []Shim
	for _, sh := range shims {
		if !serving[sh.Pid] && !kept[sh.ID] && time.Since(sh.Started) >= minAge {
			out = append(out, sh)
		}
	}
	return out, nil
}

// shimGroup is the shim group a task's container names (its pod sandbox's ID, the
// annotation the runc shim groups by), or its own ID.
func (c *Conn) shimGroup(ctx context.Context, id string) (string, error) {
	cc, err := c.Client.LoadContainer(ctx, id)
	if err != nil {
		return "", err
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		return "", err
	}
	if g := spec.Annotations[oci.AnnotationSandboxID]; g != "" {
		return g, nil
	}
	return id, nil
}

// parentPids maps every process to its parent, from /proc.
func parentPids() map[int]int {
	out := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				out[pid] = ppid
			}
		}
	}
	return out
}

// statFields are the fields of /proc/<pid>/stat after the command name (state first).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// ReapOrphanShims kills the shims that serve no task (see OrphanShims). containerd
// can leave one behind when the client creating a task goes away while the shim
// starts: the shim is up, but containerd never learned of it.
func (c *Conn) ReapOrphanShims(ctx context.Context, minAge time.Duration) {
	shims, err := c.OrphanShims(ctx, minAge)
	if err != nil {
		klog.ErrorS(err, "Looking for orphaned shims")
		return
	}
	for _, sh := range shims {
		klog.InfoS("Killing a shim that serves no task", "pid", sh.Pid, "id", sh.ID)
		if err := syscall.Kill(sh.Pid, syscall.SIGKILL); err != nil {
			klog.ErrorS(err, "Killing an orphaned shim", "pid", sh.Pid)
		}
	}
}

// processStart is when pid started (zero if unknown).
func processStart(pid int) time.Time {
	f := statFields(pid)
	// starttime (field 22 of stat, clock ticks since boot) is index 19 after ')'.
	if len(f) < 20 {
		return time.Time{}
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}
	}
	var info syscall.Sysinfo_t
	if syscall.Sysinfo(&info) != nil {
		return time.Time{}
	}
	const hz = 100 // USER_HZ on Linux
	boot := time.Now().Add(-time.Duration(info.Uptime) * time.Second)
	return boot.Add(time.Duration(ticks) * time.Second / hz)
}
