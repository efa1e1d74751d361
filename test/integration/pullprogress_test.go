package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/registry"
)

// While a pull runs, ImageStatus (verbose) of the image reports its progress, and
// `keelson images pull` prints it.
func TestPullProgress(t *testing.T) {
	const ref = "docker.io/keelson/slow:1"
	r := busyboxRegistry(t, ref)
	r.SetMiddleware(registry.SlowBlobs(32<<10, 150*time.Millisecond)) // a few seconds
	k := startWithRegistry(t, r)

	var seen atomic.Pointer[images.PullProgress]
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, err := k.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: true})
			var p images.PullProgress
			if err == nil && json.Unmarshal([]byte(st.GetInfo()["pullProgress"]), &p) == nil && p.Bytes > 0 && p.Layers > 0 {
				seen.Store(&p)
			}
		}
	}()
	out, err := exec.Command(harness.Binary(t), "images", "pull", "--socket", k.Socket, ref).CombinedOutput()
	close(stop)
	<-polled
	if err != nil {
		t.Fatalf("keelson images pull: %v\n%s", err, out)
	}
	p := seen.Load()
	if p == nil {
		t.Fatal("ImageStatus never reported the pull's progress")
	}
	if p.Ref != ref || p.TotalBytes <= 0 || p.StartedAt.IsZero() {
		t.Errorf("progress %+v: want the ref, the layers' total size and a start time", *p)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], ref) || !strings.Contains(lines[0], "layers") {
		t.Errorf("no progress line before the end:\n%s", out)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "pulled "+ref+": sha256:") {
		t.Errorf("last line %q, want pulled <ref>: <image id>", last)
	}
	st, err := k.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: true})
	if err != nil || st.GetImage() == nil || st.GetInfo()["pullProgress"] != "" {
		t.Errorf("after the pull: image %v, progress %q, %v", st.GetImage(), st.GetInfo()["pullProgress"], err)
	}
}
