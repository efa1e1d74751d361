package runtime

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// A process that looks like a pod's shim (by its command line) and has a child is
// killed with its child by EndPodShim; one of another pod is left alone.
func TestEndPodShim(t *testing.T) {
	fakeShim := func(group string) *exec.Cmd {
		cmd := &exec.Cmd{
			Path: "/bin/sh",
			Args: []string{"containerd-shim-runc-v2", "-c", "sleep 1000 & wait", "sh",
				"-namespace", "test-ns", "-id", group, "-address", "/test/containerd.sock"},
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Its group: the sleep too (a shim left alone keeps its child).
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
		return cmd
	}
	mine, other := fakeShim("pod-a"), fakeShim("pod-b")
	var child int
	for deadline := time.Now().Add(5 * time.Second); child == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for pid, ppid := range parentPids() {
			if ppid == mine.Process.Pid {
				child = pid
			}
		}
	}
	if child == 0 {
		t.Fatal("the fake shim's child did not start")
	}
	c := &Conn{Namespace: "test-ns", Address: "/test/containerd.sock"}
	c.EndPodShim("pod-a")
	if err := mine.Wait(); err == nil {
		t.Error("the pod's shim exited by itself; it should have been killed")
	}
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(child, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shim's child %d still runs", child)
		}
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("another pod's shim was killed: %v", err)
	}
}

// Of a shim's listening sockets, the task API's is told from the debug one by the
// runc shim's naming.
func TestTaskSockets(t *testing.T) {
	dir := t.TempDir()
	task := filepath.Join(dir, fmt.Sprintf("%x", sha256.Sum256([]byte("/test/containerd.sock/test-ns/pod-a"))))
	debug := filepath.Join(dir, fmt.Sprintf("%x", sha256.Sum256([]byte("/test/containerd.sock/test-ns/pod-a/debug"))))
	for _, p := range []string{debug, task} {
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	all := ShimSockets(os.Getpid())
	if !slices.Contains(all, task) || !slices.Contains(all, debug) {
		t.Fatalf("ShimSockets = %v, want both %s and %s", all, task, debug)
	}
	if got := TaskSockets("/test/containerd.sock", "test-ns", Shim{Pid: os.Getpid(), ID: "pod-a"}); !slices.Equal(got, []string{task}) {
		t.Errorf("TaskSockets = %v, want [%s]", got, task)
	}
	if got := TaskSockets("/test/containerd.sock", "test-ns", Shim{Pid: os.Getpid(), ID: "pod-b"}); len(got) != len(all) {
		t.Errorf("TaskSockets of an unknown naming = %v, want every socket %v", got, all)
	}
}
