package integration

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/wait"
)

// counter is a shell whose state lives in its memory: a start stamp taken once and a
// count, both written to /tmp every 100 ms. A restored process goes on with both; a
// process started afresh would write a new stamp and count from 1.
const counter = `stamp=$RANDOM$RANDOM$RANDOM; i=0; while :; do i=$((i+1)); echo $stamp > /tmp/stamp; echo $i > /tmp/count; sleep 0.1; done`

// TestCheckpointRestore: CheckpointContainer writes an archive in checkpointctl's
// layout while the container keeps running; a CreateContainer naming the archive
// (in another pod) restores the process with its memory and its root filesystem
// changes.
func TestCheckpointRestore(t *testing.T) {
	k := containerTestKeelson(t)
	ctx := harness.Ctx(t)
	p := newPod(t, k, "ckpt")
	cfg := ctrConfig("counter", images.Busybox, "sh", "-c", counter)
	id := p.run(t, cfg)
	read := func(id, file string) string {
		r := execSync(t, k, id, 10, "cat", file)
		return strings.TrimSpace(string(r.Stdout))
	}
	count := func(id string) int {
		n, _ := strconv.Atoi(read(id, "/tmp/count"))
		return n
	}
	wait.For(t, "the counter counts", 30*time.Second, func() error {
		if n := count(id); n < 5 {
			return errors.New("count " + strconv.Itoa(n))
		}
		return nil
	})
	if r := execSync(t, k, id, 10, "sh", "-c", "echo kept > /data.txt && rm /etc/group"); r.ExitCode != 0 {
		t.Fatalf("changing the root filesystem: %s", r.Stderr)
	}
	stamp := read(id, "/tmp/stamp")

	// Refused before anything is done.
	dir := t.TempDir()
	archive := filepath.Join(dir, "counter.tar")
	for _, tc := range []struct {
		req  *runtimeapi.CheckpointContainerRequest
		code codes.Code
	}{
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id}, codes.InvalidArgument},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: "rel/x.tar"}, codes.InvalidArgument},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: "/no/such/dir/x.tar"}, codes.InvalidArgument},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: dir}, codes.InvalidArgument},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: "nosuch", Location: archive}, codes.NotFound},
		{&runtimeapi.CheckpointContainerRequest{Location: archive}, codes.InvalidArgument},
	} {
		if _, err := k.Runtime.CheckpointContainer(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("CheckpointContainer(%q, %q): %v, want %v", tc.req.ContainerId, tc.req.Location, err, tc.code)
		}
	}

	_, err := k.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive})
	if status.Code(err) == codes.FailedPrecondition {
		// This host cannot run CRIU (test/node checkpoints and restores in the guest):
		// said at once and clearly, the container untouched, no archive, and a
		// restore refused the same way.
		t.Logf("CRIU cannot run here: %v", err)
		if !strings.Contains(err.Error(), "CRIU") {
			t.Errorf("the refusal does not name CRIU: %v", err)
		}
		if st := ctrStatus(t, k, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("after a refused checkpoint the container is %v", st.State)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("a refused checkpoint left %v", entries)
		}
		if err := os.WriteFile(archive, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		rcfg := ctrConfig("restored", archive)
		if _, err := p.create(t, rcfg); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("restore where CRIU cannot run: %v, want FailedPrecondition", err)
		}
		stopAndRemovePod(t, k, p.id)
		k.CheckNoLeaks(t)
		return
	}
	if err != nil {
		t.Fatalf("CheckpointContainer: %v", err)
	}
	// The container keeps running and counting.
	n0 := count(id)
	wait.For(t, "the checkpointed container counts on", 10*time.Second, func() error {
		if st := ctrStatus(t, k, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("after its checkpoint the container is %v", st.State)
		}
		if count(id) <= n0 {
			return errors.New("not counting")
		}
		return nil
	})
	files := tarNames(t, archive)
	for _, want := range []string{"config.dump", "spec.dump", "status.dump", "checkpoint/inventory.img", "rootfs-diff.tar"} {
		if !files[want] {
			t.Errorf("the archive lacks %s; it has %v", want, files)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the archive's directory holds %d entries, want only the archive", len(entries))
	}
	stopCtr(t, k, id, 0)
	removeCtr(t, k, id)

	// Restore into another pod.
	p2 := newPod(t, k, "restored")
	rcfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "counter"},
		Image:    &runtimeapi.ImageSpec{Image: archive},
		LogPath:  "counter.log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	rid := p2.run(t, rcfg)
	if got := read(rid, "/tmp/stamp"); got != stamp {
		t.Errorf("the restored process has stamp %q, want %q (started afresh?)", got, stamp)
	}
	n1 := count(rid)
	wait.For(t, "the restored counter counts on", 10*time.Second, func() error {
		if n := count(rid); n <= n1 || n < n0 {
			return errors.New("count " + strconv.Itoa(n))
		}
		return nil
	})
	if got := read(rid, "/data.txt"); got != "kept" {
		t.Errorf("/data.txt in the restored container: %q, want kept", got)
	}
	if r := execSync(t, k, rid, 10, "test", "-e", "/etc/group"); r.ExitCode == 0 {
		t.Errorf("a file removed before the checkpoint is back after the restore")
	}
	st := ctrStatus(t, k, rid)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || !strings.Contains(st.ImageRef, "sha256:") {
		t.Errorf("restored container's status: %v image %q ref %q", st.State, st.Image.GetImage(), st.ImageRef)
	}
	restoreDir := filepath.Join(k.RootDir, "containers", rid)
	if _, err := os.Stat(restoreDir); err != nil {
		t.Errorf("the extracted checkpoint: %v", err)
	}
	stopCtr(t, k, rid, 0)
	removeCtr(t, k, rid)
	if _, err := os.Stat(restoreDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the extracted checkpoint is left after removal: %v", err)
	}

	// A file that is no checkpoint archive is refused, leaving nothing.
	bogus := filepath.Join(dir, "bogus.tar")
	if err := os.WriteFile(bogus, []byte("not a tar"), 0o600); err != nil {
		t.Fatal(err)
	}
	rcfg.Image.Image = bogus
	if _, err := p2.create(t, rcfg); status.Code(err) != codes.InvalidArgument {
		t.Errorf("restore from a bogus archive: %v, want InvalidArgument", err)
	}
	stopAndRemovePod(t, k, p.id)
	stopAndRemovePod(t, k, p2.id)
	k.CheckNoLeaks(t)
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		out[h.Name] = true
	}
}
