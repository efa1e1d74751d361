package integration

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

func doctor(t *testing.T, k *harness.Keelson, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), append([]string{"doctor", "--config", k.Config}, args...)...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestDoctorFindsAndFixesOrphans(t *testing.T) {
	k := containerTestKeelson(t)
	mustPull(t, k, images.Pause)
	keep := newPod(t, k, "keep")
	keepCtr := keep.run(t, ctrConfig("main", images.Busybox, "sleep", "1000"))

	// A clean node, audited while keelson runs.
	if out, code := doctor(t, k); code != 0 || !strings.Contains(out, "0 orphaned objects") {
		t.Fatalf("audit of a clean node: exit %d\n%s", code, out)
	}
	if out, code := doctor(t, k, "--fix"); code != 2 || !strings.Contains(out, "stop it") {
		t.Errorf("--fix while keelson runs: exit %d\n%s", code, out)
	}

	// keelson dies right after CNI ADD of a second pod: netns, IP, iptables rules and
	// files with no record. No restart (which would collect them): the doctor must.
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	k.Start(harness.Options{Registry: reg, Env: []string{"KEELSON_FAILPOINTS=sandbox/run/files=crash"}})
	cfg := podConfig(k, "lost")
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38085}}
	if _, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg}); err == nil {
		t.Fatal("the failpoint did not fire")
	}
	<-k.Exited()

	out, code := doctor(t, k)
	if code != 1 {
		t.Fatalf("audit with orphans: exit %d\n%s", code, out)
	}
	for _, want := range []string{"orphan netns:", "orphan cni:", "orphan ip:", "orphan iptables:", "orphan file:"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit misses %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, keep.id) || strings.Contains(out, keepCtr) {
		t.Errorf("audit flags the live pod:\n%s", out)
	}
	out, code = doctor(t, k, "--fix")
	if code != 0 || !strings.Contains(out, ", 0 left") {
		t.Fatalf("--fix: exit %d\n%s", code, out)
	}
	if out, code := doctor(t, k); code != 0 {
		t.Errorf("audit after --fix: exit %d\n%s", code, out)
	}

	// The live pod was not touched.
	k.Start(harness.Options{Registry: reg})
	if r := execSync(t, k, keepCtr, 5, "echo", "alive"); string(r.Stdout) != "alive\n" {
		t.Errorf("the live pod's container after --fix: %q", r.Stdout)
	}
	stopAndRemovePod(t, k, keep.id)
	k.CheckNoLeaks(t)
}
