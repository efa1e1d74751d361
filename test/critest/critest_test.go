// Package critest runs Kubernetes' CRI validation suite (critest, sigs.k8s.io/cri-tools
// at the version pinned in hack/versions.env, built by hack/build-cri-tools.sh) against
// a keelson started by test/harness, with every image the suite pulls built locally
// (test/images.CRIToolsImages) and served from test/registry under its real name.
//
// The test fails when critest could not run (missing report, a suite-level failure, a
// timeout) and when a spec fails that expectedFailures does not list with its cause;
// every failure is printed, marked expected or UNEXPECTED.
//
//	make critest                       # builds the tools and keelson, runs this with -v
//	KEELSON_CRITEST_FOCUS='Streaming' make critest   # a subset (ginkgo focus regexp)
//
// critest's whole output, its JSON report and keelson's and containerd's logs are kept
// in bin/critest/ (KEELSON_CRITEST_OUT to change).
package critest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/test/ginkgoreport"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

// runTimeout bounds one critest run (a full run takes about 15 minutes on 2 cores).
const runTimeout = 50 * time.Minute

// mustRun names parts of spec names that must run (not be skipped) on this host: a
// runtime that stops advertising user namespaces would otherwise pass quietly.
var mustRun = []string{"UserNamespaces", "NRI"}

// skipped are specs that cannot pass on any runtime here, as ginkgo skip regexps.
var skipped = map[string]string{
	// Its image is named by a fixed digest of the image cri-tools published; a locally
	// built image has another digest.
	`public image with digest should be pulled and removed`: "needs gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2…, which cannot be rebuilt locally",
}

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m.Run))
}

func critestBinary(t *testing.T) string {
	if p := os.Getenv("KEELSON_CRITEST"); p != "" {
		return p
	}
	p := filepath.Join(harness.Prefix, "bin", "critest")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("critest not found at %s: run `make cri-tools` (hack/build-cri-tools.sh)", p)
	}
	if _, err := os.Stat(images.CRIToolsBusyboxBinary); err != nil {
		t.Skipf("%s not found: run `make cri-tools` (hack/build-cri-tools.sh)", images.CRIToolsBusyboxBinary)
	}
	return p
}

func outDir(t *testing.T) string {
	dir := os.Getenv("KEELSON_CRITEST_OUT")
	if dir == "" {
		dir = filepath.Join(harness.RepoRoot(), "bin", "critest")
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCritest(t *testing.T) {
	harness.RequireRoot(t)
	bin := critestBinary(t)
	out := outDir(t)
	start := time.Now()

	reg, err := registry.StartWithTestImages()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	imgs, err := images.CRIToolsImages()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.PushAll(imgs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d images built and pushed in %s", len(imgs), time.Since(start).Round(time.Second))

	// NRI on, on a socket of the instance's own, so the suite's NRI specs (a plugin
	// of theirs on that socket) run too.
	nriDir := harness.NewDir(t, "ktnri-")
	nriSocket := filepath.Join(nriDir, "nri.sock")
	opts := harness.Options{Registry: reg, ExtraConfig: fmt.Sprintf(`
[nri]
  enabled = true
  socket_path = %q
  plugin_path = %q
  plugin_config_path = %q
  # The suite's synchronization specs hold a plugin's Synchronize for 2s.
  plugin_request_timeout = "5s"
`, nriSocket, filepath.Join(nriDir, "plugins"), filepath.Join(nriDir, "conf.d"))}
	k := harness.Prepare(t, opts)
	// Hosts the standard mirror config does not cover: cri-tools' own images and the
	// old Kubernetes registry.
	for host, server := range map[string]string{"gcr.io": "https://gcr.io", "k8s.gcr.io": "https://k8s.gcr.io"} {
		if err := registry.WriteHostsToml(k.CertsDir, host, server, "http://"+reg.Addr); err != nil {
			t.Fatal(err)
		}
	}
	k.Start(opts)
	t.Cleanup(func() { saveLogs(t, k, out) })

	report := filepath.Join(out, "report.json")
	endpoint := "unix://" + k.Socket
	args := []string{
		"-runtime-endpoint=" + endpoint,
		"-image-endpoint=" + endpoint,
		"-ginkgo.no-color",
		"-ginkgo.v", // each spec's steps and output, in critest.log
		"-ginkgo.json-report=" + report,
		"-ginkgo.timeout=" + (runTimeout - 2*time.Minute).String(),
		"-test.timeout=" + (runTimeout - time.Minute).String(),
		"-nri-socket=" + nriSocket,
	}
	for re := range skipped {
		args = append(args, "-ginkgo.skip="+re)
	}
	if f := os.Getenv("KEELSON_CRITEST_FOCUS"); f != "" {
		args = append(args, "-ginkgo.focus="+f)
	}
	args = append(args, strings.Fields(os.Getenv("KEELSON_CRITEST_ARGS"))...)

	logPath := filepath.Join(out, "critest.log")
	runStart := time.Now()
	exitErr := runCritest(t, bin, args, out, logPath)
	elapsed := time.Since(runStart).Round(time.Second)
	t.Logf("critest ran for %s (exit: %v); its output: %s", elapsed, exitErr, logPath)

	specs, suiteFailures, err := ginkgoreport.Read(report)
	if err != nil {
		t.Fatalf("critest did not run (%v): %v; see %s", exitErr, err, logPath)
	}
	for _, f := range suiteFailures {
		t.Errorf("critest suite node failed: %s", f)
	}
	if len(specs) == 0 {
		t.Fatalf("critest ran no spec (exit: %v); see %s", exitErr, logPath)
	}

	sum := ginkgoreport.Summarize(specs)
	var filtered []string
	for _, s := range sum.Skipped {
		if reason := ginkgoreport.FirstLine(s.Failure.Message); reason != "" {
			fmt.Printf("critest: skipped %s: %s\n", s.Name(), reason)
		} else if !strings.Contains(s.Name(), "benchmark") {
			filtered = append(filtered, s.Name())
		}
	}
	if len(filtered) > 0 && len(filtered) <= 10 {
		for _, name := range filtered {
			fmt.Printf("critest: skipped %s: by -ginkgo.skip\n", name)
		}
	} else if len(filtered) > 0 {
		fmt.Printf("critest: %d specs not run (-ginkgo.skip/focus)\n", len(filtered))
	}
	var unexpected int
	for _, s := range sum.Skipped {
		if os.Getenv("KEELSON_CRITEST_FOCUS") != "" {
			break // a focused run skips the rest on purpose
		}
		for _, part := range mustRun {
			if strings.Contains(s.Name(), part) {
				fmt.Printf("critest: SKIPPED but must run here: %s\n", s.Name())
				unexpected++
			}
		}
	}
	for _, s := range sum.Failed {
		cause, ok := expectedFailures[s.Name()]
		mark := "expected"
		if !ok {
			mark, cause = "UNEXPECTED", ""
			unexpected++
		}
		fmt.Printf("critest: FAILED (%s) %s\n    %s\n    at %s\n", mark, s.Name(), ginkgoreport.FirstLine(s.Failure.Message), s.Failure.Location)
		if cause != "" {
			fmt.Printf("    known cause: %s\n", cause)
		}
	}
	for _, name := range sum.ExpectedButPassed(expectedFailures) {
		fmt.Printf("critest: expected to fail but passed (remove from expectedFailures): %s\n", name)
	}
	if leaks := k.Leaks(t); len(leaks) > 0 {
		t.Logf("left behind after critest (%d):\n  %s", len(leaks), strings.Join(leaks, "\n  "))
	}
	t.Logf("critest: %d specs in %s, %d failed unexpectedly; whole test %s", len(specs), elapsed, unexpected, time.Since(start).Round(time.Second))
	fmt.Printf("critest: %d passed, %d failed, %d skipped\n", len(sum.Passed), len(sum.Failed), len(sum.Skipped))
	if unexpected > 0 {
		t.Errorf("%d critest specs failed that are not in expectedFailures, or were skipped but must run", unexpected)
	}
}

// runCritest runs critest, its output to logPath, with a line per finished spec on
// stdout; it returns critest's exit error (exit status 1 when specs failed).
func runCritest(t *testing.T, bin string, args []string, dir, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// critest makes its pods' log directories under TMPDIR.
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.WaitDelay = 30 * time.Second
	fmt.Printf("critest: %s %s\n", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting critest: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if progressLine(line) {
				fmt.Println("critest: " + line)
			}
		}
		_, _ = io.Copy(logf, pr)
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		t.Errorf("critest did not finish within %s", runTimeout)
	}
	return err
}

// progressLine tells the lines of ginkgo's verbose output worth echoing: failures as
// they happen, the closing summary and counts.
func progressLine(line string) bool {
	for _, p := range []string{"• [FAILED]", "• [PANICKED]", "• [TIMEDOUT]", "Ran ", "FAIL!", "SUCCESS!", "[FAIL]", "Summarizing"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// saveLogs copies keelson's and its containerd's logs next to critest's output.
func saveLogs(t *testing.T, k *harness.Keelson, out string) {
	for src, dst := range map[string]string{
		k.LogPath: "keelson.log",
		filepath.Join(k.StateDir, "containerd", "containerd.log"): "containerd.log",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, dst), b, 0o644); err != nil {
			t.Log(err)
		}
	}
}
