package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/store"
)

// A containerd that starts while a task's process has already exited deletes that
// task's shim without asking anyone (it cannot tell such a shim from one left by a
// crash inside task creation), and the exit status goes with it. Before the
// supervisor starts containerd, it asks each shim itself and writes down the exits
// it finds; container recovery reads them when the task turns out to be gone.

// ShimExit is an exit status read from a shim while containerd was down.
type ShimExit struct {
	Status   uint32    `json:"status"`
	ExitedAt time.Time `json:"exitedAt"`
}

// ReadShimExit returns the exit recorded at path, if any.
func ReadShimExit(path string) (ShimExit, bool) {
	var e ShimExit
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &e) != nil {
		return ShimExit{}, false
	}
	return e, true
}

// RemoveShimExit forgets a recorded exit once the container's own status holds it.
func RemoveShimExit(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.ErrorS(err, "Removing recorded exit", "path", path)
	}
}

// shimCallTimeout bounds each call to a shim: a wedged shim must not hold up
// containerd's start.
const shimCallTimeout = 2 * time.Second

// HarvestShimExits asks the shims of one containerd namespace (under containerd's
// state dir) for tasks that exited, and records each at exitPath(id); tasks for
// which exitPath returns "" are not asked. It returns how many it recorded.
func HarvestShimExits(containerdState, namespace string, exitPath func(id string) string) int {
	bundles, _ := filepath.Glob(filepath.Join(containerdState, "io.containerd.runtime.v2.task", namespace, "*"))
	n := 0
	for _, bundle := range bundles {
		id := filepath.Base(bundle)
		path := exitPath(id)
		if path == "" {
			continue
		}
		e, err := shimTaskExit(bundle, id)
		if err != nil {
			klog.V(2).InfoS("Not reading a shim's task", "id", id, "err", err)
			continue
		}
		if e == nil {
			continue
		}
		if err := store.SaveJSON(path, e); err != nil {
			klog.ErrorS(err, "Recording a task's exit", "id", id)
			continue
		}
		klog.InfoS("Recorded an exit from the shim", "id", id, "exitStatus", e.Status, "exitedAt", e.ExitedAt)
		n++
	}
	return n
}

// shimTaskExit returns the exit of the task a bundle's shim runs, or nil while it
// still runs.
func shimTaskExit(bundle, id string) (*ShimExit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), shimCallTimeout)
	defer cancel()
	return askShim(ctx, bundle, id, false)
}

// WaitShim waits, by asking the shim directly, until the task of a bundle exits.
func WaitShim(ctx context.Context, bundle, id string) (ShimExit, error) {
	e, err := askShim(ctx, bundle, id, true)
	if err != nil {
		return ShimExit{}, err
	}
	return *e, nil
}

// askShim calls the shim's State (nil while the task runs) or Wait.
func askShim(ctx context.Context, bundle, id string, wait bool) (*ShimExit, error) {
	version, address, err := shimAddress(bundle)
	if err != nil {
		return nil, err
	}
	client, err := dialShim(ctx, address)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	var (
		status   = tasktypes.Status_STOPPED
		code     uint32
		exitedAt *timestamppb.Timestamp
	)
	switch {
	case version >= 3 && wait:
		r, err := taskv3.NewTTRPCTaskClient(client).Wait(ctx, &taskv3.WaitRequest{ID: id})
		if err != nil {
			return nil, err
		}
		code, exitedAt = r.ExitStatus, r.ExitedAt
	case version >= 3:
		r, err := taskv3.NewTTRPCTaskClient(client).State(ctx, &taskv3.StateRequest{ID: id})
		if err != nil {
			return nil, err
		}
		status, code, exitedAt = r.Status, r.ExitStatus, r.ExitedAt
	case wait:
		r, err := taskv2.NewTTRPCTaskClient(client).Wait(ctx, &taskv2.WaitRequest{ID: id})
		if err != nil {
			return nil, err
		}
		code, exitedAt = r.ExitStatus, r.ExitedAt
	default:
		r, err := taskv2.NewTTRPCTaskClient(client).State(ctx, &taskv2.StateRequest{ID: id})
		if err != nil {
			return nil, err
		}
		status, code, exitedAt = r.Status, r.ExitStatus, r.ExitedAt
	}
	if status != tasktypes.Status_STOPPED {
		return nil, nil
	}
	return &ShimExit{Status: code, ExitedAt: exitedAt.AsTime()}, nil
}

// dialShim connects to a shim's task API socket, within shimCallTimeout.
func dialShim(ctx context.Context, path string) (*ttrpc.Client, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, shimCallTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return ttrpc.NewClient(conn), nil
}

// ShimBundle finds the bundle dir of a running task from its init process: the
// runc shim is the init's parent (its subreaper) and runs in a bundle dir of its
// namespace, its own first task's when it serves a whole pod, so the task's bundle
// is the sibling named after it.
func ShimBundle(pid int, id string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return "", fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	cwd, err := os.Readlink("/proc/" + f[1] + "/cwd")
	if err != nil {
		return "", err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	if _, _, err := shimAddress(bundle); err != nil {
		return "", fmt.Errorf("process %d's parent runs in %s, and %s is no shim bundle: %w", pid, cwd, bundle, err)
	}
	return bundle, nil
}

// shimAddress reads a bundle's shim socket and task API version: bootstrap.json
// (containerd 2.x) or the address file (1.x shims, API v2).
func shimAddress(bundle string) (int, string, error) {
	version, address := 2, ""
	if b, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil {
		var p struct {
			Version  int    `json:"version"`
			Address  string `json:"address"`
			Protocol string `json:"protocol"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return 0, "", fmt.Errorf("bootstrap.json: %w", err)
		}
		if p.Protocol != "" && p.Protocol != "ttrpc" {
			return 0, "", fmt.Errorf("shim speaks %s", p.Protocol)
		}
		version, address = p.Version, p.Address
	} else {
		b, err := os.ReadFile(filepath.Join(bundle, "address"))
		if err != nil {
			return 0, "", err
		}
		address = strings.TrimSpace(string(b))
	}
	if !strings.HasPrefix(address, "unix://") {
		return 0, "", fmt.Errorf("shim address %q is not a unix socket", address)
	}
	return version, strings.TrimPrefix(address, "unix://"), nil
}
