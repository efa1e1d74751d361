package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// A shim that serves no task — up, but containerd never learned of it (its client
// went away while it started) — is found by `keelson doctor` and ended by
// `keelson doctor --fix`, by the reaper at keelson's start, and by the periodic one
// once it is a minute old. Shims that serve a pod are left alone throughout.
func TestOrphanShimsAreFoundAndEnded(t *testing.T) {
	harness.RequireRoot(t)
	k := harness.Prepare(t, harness.Options{Registry: reg})
	// The periodic collection every 2 s (its shims must still be a minute old).
	cfg, err := os.ReadFile(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.Config, append([]byte("gc_interval = \"2s\"\n"), cfg...), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Start(harness.Options{Registry: reg})

	// The periodic reaper's: started first, so that the minute it must wait overlaps
	// the rest of the set-up.
	periodic := startBareShim(t, k)
	// Too young for an audit while keelson runs (it may be creating its task).
	if out, code := doctor(t, k); code != 0 || !strings.Contains(out, "0 orphaned objects") {
		t.Errorf("audit with a young task-less shim while keelson runs: exit %d\n%s", code, out)
	}

	mustPull(t, k, images.Busybox)
	keep := newPod(t, k, "keep")
	keepCtr := keep.run(t, ctrConfig("main", images.Busybox, "sleep", "1000"))
	keepShims := runtime.Shims(harness.Namespace, k.ContainerdSocket)
	if len(keepShims) != 2 {
		t.Fatalf("want the live pod's shim and the bare one, have %+v", keepShims)
	}

	waitShimGone(t, periodic, time.Until(periodic.Started.Add(time.Minute))+30*time.Second)
	if !strings.Contains(k.Log(), fmt.Sprintf(`"Killing a shim that serves no task" pid=%d`, periodic.Pid)) {
		t.Errorf("the periodic reaper did not log ending shim %d", periodic.Pid)
	}

	// keelson stopped: the audit reports a task-less shim of any age; --fix ends it.
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	byDoctor := startBareShim(t, k)
	out, code := doctor(t, k)
	want := fmt.Sprintf("orphan shim: pid %d serving %s, no task behind it", byDoctor.Pid, byDoctor.ID[:12])
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("audit: exit %d, want 1 and %q\n%s", code, want, out)
	}
	if strings.Contains(out, keep.id[:12]) || strings.Contains(out, keepCtr[:12]) {
		t.Errorf("audit flags the live pod:\n%s", out)
	}
	out, code = doctor(t, k, "--fix")
	if code != 0 || !strings.Contains(out, "fixed 1, 0 left") {
		t.Fatalf("--fix: exit %d\n%s", code, out)
	}
	waitShimGone(t, byDoctor, 10*time.Second)
	if out, code := doctor(t, k); code != 0 {
		t.Errorf("audit after --fix: exit %d\n%s", code, out)
	}

	// One made while keelson is down is ended before keelson serves again.
	atStart := startBareShim(t, k)
	k.Start(harness.Options{Registry: reg})
	waitShimGone(t, atStart, 5*time.Second) // killed before serving; gone a moment later
	if !strings.Contains(k.Log(), fmt.Sprintf(`"Killing a shim that serves no task" pid=%d`, atStart.Pid)) {
		t.Errorf("the start-time reaper did not log ending shim %d", atStart.Pid)
	}

	// The live pod's shim outlived all of it.
	for _, sh := range keepShims {
		if sh.Pid != periodic.Pid && !harness.ProcessAlive(sh.Pid) {
			t.Errorf("the live pod's shim %d (id %s) was ended", sh.Pid, sh.ID)
		}
	}
	if r := execSync(t, k, keepCtr, 5, "echo", "alive"); string(r.Stdout) != "alive\n" {
		t.Errorf("the live pod's container: %q", r.Stdout)
	}
	stopAndRemovePod(t, k, keep.id)
	k.CheckNoLeaks(t)
}

// startBareShim starts a runc shim in keelson's namespace for a task that is never
// created, exactly as containerd starts one (the shim's start command, its bootstrap
// parameters on stdin, run in a bundle directory): a running shim that serves no
// task and that containerd knows nothing of. It returns the shim's server process.
func startBareShim(t *testing.T, k *harness.Keelson) runtime.Shim {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	bundle := filepath.Join(k.Dir, "bare-shims", id[:12])
	if err := os.MkdirAll(bundle, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.2.0","annotations":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The shim logs to a FIFO in its bundle that containerd reads: this test does.
	if err := unix.Mkfifo(filepath.Join(bundle, "log"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(bundle, "log"), os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, logf) }()
	t.Cleanup(func() { logf.Close() })

	ttrpcAddress := k.ContainerdSocket + ".ttrpc"
	params := &bootapi.BootstrapParams{
		InstanceID:             id,
		Namespace:              harness.Namespace,
		LogLevel:               bootapi.LogLevel_LOG_LEVEL_INFO,
		ContainerdGrpcAddress:  k.ContainerdSocket,
		ContainerdTtrpcAddress: ttrpcAddress,
		ContainerdBinary:       harness.Prefix + "/bin/containerd",
	}
	// Where keelson's supervised containerd has its shims put their sockets.
	if dir := filepath.Join(k.StateDir, "s"); len(dir) <= 42 {
		params.SocketDir = &dir
	}
	data, err := proto.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.Prefix+"/bin/containerd-shim-runc-v2",
		"-namespace", harness.Namespace, "-address", k.ContainerdSocket, "-id", id, "start")
	cmd.Dir = bundle
	cmd.Stdin = bytes.NewReader(data)
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+ttrpcAddress, "GRPC_ADDRESS="+k.ContainerdSocket,
		"NAMESPACE="+harness.Namespace, "MAX_SHIM_VERSION=2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if _, err := cmd.Output(); err != nil {
		t.Fatalf("starting a bare shim: %v\n%s", err, stderr.String())
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, sh := range runtime.Shims(harness.Namespace, k.ContainerdSocket) {
			if sh.ID != id {
				continue
			}
			sockets := runtime.ShimSockets(sh.Pid)
			if len(sockets) == 0 {
				continue // not serving yet
			}
			// Killed shims leave their sockets; so would a failed test its shim.
			t.Cleanup(func() {
				if harness.ProcessAlive(sh.Pid) {
					_ = syscall.Kill(sh.Pid, syscall.SIGKILL)
				}
				for _, s := range sockets {
					_ = os.Remove(s)
				}
			})
			return sh
		}
	}
	t.Fatalf("no shim process serving %s", id)
	return runtime.Shim{}
}

// waitShimGone waits up to timeout for shim sh to have been ended.
func waitShimGone(t *testing.T, sh runtime.Shim, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		gone := true
		for _, s := range runtime.Shims(sh.Namespace, sh.Address) {
			if s.Pid == sh.Pid {
				gone = false
			}
		}
		if gone && !harness.ProcessAlive(sh.Pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shim %d (id %s) still runs %s after it was due to be ended", sh.Pid, sh.ID[:12], timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
