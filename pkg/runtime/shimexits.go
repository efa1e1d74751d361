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
	version, address, err := shimAddress(bundle)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("unix", address, shimCallTimeout)
	if err != nil {
		return nil, err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), shimCallTimeout)
	defer cancel()
	var (
		status   tasktypes.Status
		code     uint32
		exitedAt time.Time
	)
	if version >= 3 {
		r, err := taskv3.NewTTRPCTaskClient(client).State(ctx, &taskv3.StateRequest{ID: id})
		if err != nil {
			return nil, err
		}
		status, code, exitedAt = r.Status, r.ExitStatus, r.ExitedAt.AsTime()
	} else {
		r, err := taskv2.NewTTRPCTaskClient(client).State(ctx, &taskv2.StateRequest{ID: id})
		if err != nil {
			return nil, err
		}
		status, code, exitedAt = r.Status, r.ExitStatus, r.ExitedAt.AsTime()
	}
	if status != tasktypes.Status_STOPPED {
		return nil, nil
	}
	return &ShimExit{Status: code, ExitedAt: exitedAt}, nil
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
