package runtime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// A task creation that containerd gives up on (its client, keelson, killed inside
// it) can still complete in the shim: containerd's cleanup asks the shim to delete
// the task before the shim has recorded it, the shim answers "not found", and then
// finishes the creation. The task lives on in the shim, unknown to containerd, and
// a pod's shim that holds it never exits. Such a task can only be deleted by asking
// the shim itself.

// DeleteStrayTask deletes task id from the shim serving group (a pod's sandbox ID,
// which names the pod's shim; or the task's own ID) when that shim holds it while
// containerd does not: call it only for a task containerd reports not found. It
// returns whether there was such a task. No shim of that group is not an error.
func (c *Conn) DeleteStrayTask(ctx context.Context, group, id string) (bool, error) {
	var errs []error
	for _, sh := range Shims(c.Namespace, c.Address) {
		if sh.ID != group {
			continue
		}
		for _, path := range TaskSockets(c.Address, c.Namespace, sh) {
			found, err := deleteShimTask(ctx, path, c.Namespace, id)
			if err == nil {
				if found {
					klog.InfoS("Deleted a task containerd had lost from its shim", "id", id, "shim", group, "pid", sh.Pid)
				}
				return found, nil
			}
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return false, fmt.Errorf("deleting task %s from the shim of %s: %w", id, group, err)
	}
	return false, nil
}

// TaskSockets is where shim sh of the containerd at address may serve its task
// API: of the sockets it listens on (the task API's, and a debug socket when
// containerd debugs), the one the runc shim names by the SHA-256 of
// <containerd address>/<namespace>/<group>, else all.
func TaskSockets(address, namespace string, sh Shim) []string {
	paths := ShimSockets(sh.Pid)
	want := fmt.Sprintf("%x", sha256.Sum256([]byte(filepath.Join(address, namespace, sh.ID))))
	for _, p := range paths {
		if filepath.Base(p) == want {
			return []string{p}
		}
	}
	return paths
}

// EndPodShim ends the shim of a pod being removed, if one still runs. Every task of
// the pod has been deleted by then, and deleting a pod's last task makes its shim
// exit, so a shim left holds only tasks containerd lost that could not be deleted
// (see DeleteStrayTask): it and what it still runs are killed.
func (c *Conn) EndPodShim(group string) {
	var parents map[int]int
	for _, sh := range Shims(c.Namespace, c.Address) {
		if sh.ID != group {
			continue
		}
		if parents == nil {
			parents = parentPids()
		}
		klog.InfoS("Killing the shim a removed pod left", "podSandboxID", group, "pid", sh.Pid)
		for pid, ppid := range parents {
			if ppid == sh.Pid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := syscall.Kill(sh.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			klog.ErrorS(err, "Killing the shim a removed pod left", "pid", sh.Pid)
		}
	}
}

// deleteShimTask deletes task id through the task API at a shim's socket (v3, or v2
// for containerd 1.x's shims) and asks the shim to exit if that was its last task.
func deleteShimTask(ctx context.Context, path, namespace, id string) (bool, error) {
	client, err := dialShim(ctx, path)
	if err != nil {
		return false, err
	}
	defer client.Close()
	// runc deletes a created container by killing its init and polling up to 10 s
	// for it to go.
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, namespace), 15*time.Second)
	defer cancel()
	v3, v2 := taskv3.NewTTRPCTaskClient(client), taskv2.NewTTRPCTaskClient(client)
	_, err = v3.Delete(ctx, &taskv3.DeleteRequest{ID: id})
	old := status.Code(err) == codes.Unimplemented
	if old {
		_, err = v2.Delete(ctx, &taskv2.DeleteRequest{ID: id})
	}
	if err != nil {
		if errdefs.IsNotFound(errgrpc.ToNative(err)) {
			return false, nil
		}
		return false, err
	}
	// The shim exits if that was its last task.
	if old {
		_, _ = v2.Shutdown(ctx, &taskv2.ShutdownRequest{ID: id})
	} else {
		_, _ = v3.Shutdown(ctx, &taskv3.ShutdownRequest{ID: id})
	}
	return true, nil
}

// ShimSockets lists the unix sockets a shim process listens on, by matching the
// socket inodes among its file descriptors with its view of the unix sockets. The
// socket directory is containerd's choice (socket_dir), so it is read rather than
// derived.
func ShimSockets(pid int) []string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	var out []string
	// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is a listener.
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 8 && f[3] == "00010000" && inodes[f[6]] {
			out = append(out, f[7])
		}
	}
	return out
}
