package integration

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// TestSELinuxOptionsWithoutSELinux: on a node without SELinux (this one) the options
// and selinux_relabel are accepted and change nothing, and Status says so; what they
// do where SELinux is on is covered by pkg/selinux's and pkg/oci's unit tests.
func TestSELinuxOptionsWithoutSELinux(t *testing.T) {
	k := containerTestKeelson(t)
	st, err := k.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil || st.Info["selinux"] != "false" {
		t.Fatalf("Status info selinux = %q (%v)", st.GetInfo()["selinux"], err)
	}
	opt := &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c4,c5"}
	p := newPod(t, k, "selinux", func(c *runtimeapi.PodSandboxConfig) { c.Linux.SecurityContext.SelinuxOptions = opt })
	cfg := ctrConfig("c", images.Busybox, "sleep", "100000")
	cfg.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Type: "spc_t"}
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: t.TempDir(), SelinuxRelabel: true}}
	id := p.run(t, cfg)
	if r := execSync(t, k, id, 10, "ls", "/data"); r.ExitCode != 0 {
		t.Errorf("exec: %d %s", r.ExitCode, r.Stderr)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
