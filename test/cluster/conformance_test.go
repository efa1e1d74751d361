package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelson/keelson/test/e2e"
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

// expectedConformanceFailures are the upstream specs that fail here for reasons that
// are not keelson's, each with the reason (the README lists them too).
var expectedConformanceFailures = map[string]string{}

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
	var specs []specResult
	// Parallel specs first, then [Serial] ones on their own, as the upstream CI runs
	// them (the two [Disruptive] ones only taint nodes: they run too).
	specs = append(specs, runGinkgo(t, c, out, "parallel", conformanceProcs, focus, conformanceLabels+` && !Serial && !Disruptive`)...)
	specs = append(specs, runGinkgo(t, c, out, "serial", 1, focus, conformanceLabels+` && (Serial || Disruptive)`)...)
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

// specResult is one spec that ran (or skipped itself) and how it ended.
type specResult struct {
	Name, State, Failure string
	Attempts             int
}

// runGinkgo runs the specs labels select (and focus, when set) with e2e.test under the
// ginkgo CLI in procs processes, and returns those that ran or skipped themselves.
func runGinkgo(t *testing.T, c *cluster, out, name string, procs int, focus, labels string) []specResult {
	t.Helper()
	jsonReport := filepath.Join(out, name+".json")
	_ = os.Remove(jsonReport)
	logFile, err := os.Create(filepath.Join(out, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	// A spec that fails is run once more (and reported as flaky when the second run
	// passes): this machine's two cores run 3 nodes and 8 spec processes.
	args := []string{fmt.Sprintf("--procs=%d", procs), "--label-filter=" + labels, "--flake-attempts=2"}
	if focus != "" {
		args = append(args, "--focus="+focus)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e2e.K8sBin, "ginkgo"), append(args,
		"--timeout=60m", "--no-color", "--output-dir="+out, "--json-report="+name+".json",
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
	specs, err := readGinkgoReport(jsonReport)
	if err != nil {
		t.Fatalf("conformance %s: %v (ginkgo: %v; see %s)", name, err, runErr, logFile.Name())
	}
	return specs
}

// readGinkgoReport reads ginkgo's JSON report. Specs the filters left out are listed
// as skipped with no failure; a spec that skipped itself has its reason as failure.
func readGinkgoReport(path string) ([]specResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var suites []struct {
		SpecReports []struct {
			ContainerHierarchyTexts []string
			LeafNodeText            string
			LeafNodeType            string
			State                   string
			NumAttempts             int
			Failure                 *struct{ Message string }
		}
	}
	if err := json.Unmarshal(data, &suites); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []specResult
	for _, s := range suites {
		for _, r := range s.SpecReports {
			if r.LeafNodeType != "It" || (r.State == "skipped" && r.Failure == nil) {
				continue
			}
			name := strings.Join(append(r.ContainerHierarchyTexts, r.LeafNodeText), " ")
			res := specResult{Name: name, State: r.State, Attempts: r.NumAttempts}
			if r.Failure != nil {
				res.Failure = firstLine(r.Failure.Message)
			}
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no spec that ran", path)
	}
	return out, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// report prints every failure (expected ones with their reason) and the closing line,
// and fails the test on an unexpected failure.
func report(t *testing.T, specs []specResult) {
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	var pass, fail, skip int
	for _, s := range specs {
		switch s.State {
		case "passed":
			pass++
			if s.Attempts > 1 {
				t.Logf("flaky (passed on attempt %d): %s", s.Attempts, s.Name)
			}
		case "skipped", "pending":
			skip++
			t.Logf("skipped: %s", s.Name)
		default:
			fail++
			if why, ok := expectedConformanceFailures[s.Name]; ok {
				t.Logf("failed (expected: %s): %s", why, s.Name)
				continue
			}
			t.Errorf("FAILED (%s): %s\n    %s", s.State, s.Name, s.Failure)
		}
	}
	fmt.Printf("conformance: %d passed, %d failed, %d skipped\n", pass, fail, skip)
}
