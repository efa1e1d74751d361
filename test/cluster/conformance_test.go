package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keelson/keelson/test/e2e"
	"github.com/keelson/keelson/test/ginkgoreport"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// Kubernetes' own node conformance specs (test/e2e of the pinned release, built by
// hack/build-k8s.sh) run against the cluster: every `[sig-node] ... [Conformance]`
// spec, the parallel ones in parallel ginkgo processes, then the [Serial] ones alone.
// The specs are chosen by their ginkgo labels.
const (
	conformanceLabels = `Conformance && sig-node && !Flaky`
	conformanceProcs  = 8
)

// Each run's budget: ginkgo interrupts itself (and writes its report) at the first
// time, the test kills what is left of it a little later; together under make's
// `go test -timeout 90m` with the cluster's start-up.
const (
	parallelBudget = 45 * time.Minute
	serialBudget   = 20 * time.Minute
	killGrace      = 3 * time.Minute
)

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, b := range []string{"e2e.test", "ginkgo", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(e2e.K8sBin, b)); err != nil {
			t.Fatalf("no %s in %s: run `make k8s`", b, e2e.K8sBin)
		}
	}
	imgs, err := images.ConformanceImages()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.PushAll(imgs); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t)
	out := conformanceDir(t)
	focus := os.Getenv("KEELSON_CONFORMANCE_FOCUS")
	// Parallel specs first, then [Serial] ones on their own, as the upstream CI runs
	// them (the two [Disruptive] ones only taint nodes: they run too).
	specs := runGinkgo(t, c, out, "parallel", conformanceProcs, parallelBudget, focus, conformanceLabels+` && !Serial && !Disruptive`)
	specs = append(specs, runGinkgo(t, c, out, "serial", 1, serialBudget, focus, conformanceLabels+` && (Serial || Disruptive)`)...)
	if len(specs) == 0 {
		t.Errorf("no conformance spec ran (focus %q); see %s", focus, out)
	}
	report(t, specs)
}

// conformanceDir is where the specs' output and reports go: bin/conformance of the
// repository (kept for CI to show), or a temp dir.
func conformanceDir(t *testing.T) string {
	if wd, err := os.Getwd(); err == nil {
		d := filepath.Join(wd, "..", "..", "bin", "conformance")
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return harness.NewDir(t, "kcl-conf-")
}

// runGinkgo runs the specs labels select (and focus, when set) with e2e.test under the
// ginkgo CLI in procs processes, and returns those that ran or skipped themselves. A
// suite-level failure, or ginkgo failing with no failed spec to explain it, fails t.
func runGinkgo(t *testing.T, c *cluster, out, name string, procs int, budget time.Duration, focus, labels string) []ginkgoreport.Spec {
	t.Helper()
	jsonReport := filepath.Join(out, name+".json")
	_ = os.Remove(jsonReport)
	logFile, err := os.Create(filepath.Join(out, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// A spec that fails is run once more (and reported as flaky when the second run
	// passes): this machine's two cores run 3 nodes and the spec processes.
	args := []string{fmt.Sprintf("--procs=%d", procs), "--label-filter=" + labels, "--flake-attempts=2"}
	if focus != "" {
		args = append(args, "--focus="+focus)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget+killGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e2e.K8sBin, "ginkgo"), append(args,
		"--timeout="+budget.String(), "--no-color", "--output-dir="+out, "--json-report="+name+".json",
		filepath.Join(e2e.K8sBin, "e2e.test"), "--",
		"--kubeconfig="+c.cp.Kubeconfig, "--provider=skeleton",
		"--e2e-output-dir="+out, "--report-dir="+filepath.Join(out, name),
		"--allowed-not-ready-nodes=0", "--node-os-distro=debian")...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("conformance %s: ginkgo ran %s (%v); output in %s", name, time.Since(start).Round(time.Second), runErr, logFile.Name())
	all, suiteFailures, err := ginkgoreport.Read(jsonReport)
	if err != nil {
		t.Errorf("conformance %s: no report (%v; ginkgo: %v); see %s", name, err, runErr, logFile.Name())
		return nil
	}
	for _, f := range suiteFailures {
		t.Errorf("conformance %s: suite node failed: %s", name, f)
	}
	var specs []ginkgoreport.Spec
	for _, s := range all {
		if !s.Filtered() {
			specs = append(specs, s)
		}
	}
	if runErr != nil && len(ginkgoreport.Summarize(append([]ginkgoreport.Spec{}, specs...)).Failed) == 0 {
		t.Errorf("conformance %s: ginkgo failed (%v) with no failed spec; see %s", name, runErr, logFile.Name())
	}
	return specs
}

// report prints every failure and the closing line; a failure fails t.
func report(t *testing.T, specs []ginkgoreport.Spec) {
	sum := ginkgoreport.Summarize(specs)
	for _, s := range sum.Passed {
		if s.NumAttempts > 1 {
			t.Logf("flaky (passed on attempt %d): %s", s.NumAttempts, s.Name())
		}
	}
	for _, s := range sum.Skipped {
		t.Logf("skipped: %s: %s", s.Name(), ginkgoreport.FirstLine(s.Failure.Message))
	}
	for _, s := range sum.Failed {
		t.Errorf("FAILED (%s): %s\n    %s\n    at %s", s.State, s.Name(), ginkgoreport.FirstLine(s.Failure.Message), s.Failure.Location)
	}
	fmt.Printf("conformance: %d passed, %d failed, %d skipped\n", len(sum.Passed), len(sum.Failed), len(sum.Skipped))
}
