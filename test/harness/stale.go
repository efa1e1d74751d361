package harness

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/keelson/keelson/pkg/mounts"
)

// A test process that is killed (a CI timeout, a reboot of the sandbox, ^C twice)
// never runs its cleanups. Everything it made is named after its PID, so the next
// test process can tell a dead run's leftovers from a live parallel run's objects
// and remove them before they confuse leak checks and node audits.

const ownerFile = ".keelson-test-owner"

var (
	staleCgroupRE = regexp.MustCompile(`^keelson-test-(\d+)-\d+$`)
	staleBridgeRE = regexp.MustCompile(`^kt(\d+)-\d+$`)
)

// Main runs a test binary's tests between a sweep of dead runs' leftovers and the
// removal of this run's build dir. Call it from TestMain.
func Main(run func() int) int {
	SweepStale()
	defer func() {
		if binPath != "" {
			_ = os.RemoveAll(filepath.Dir(binPath))
		}
	}()
	return run()
}

// SweepStale removes what dead test processes left: processes and mounts under
// their temp dirs, the dirs, their cgroup parents, bridges and iptables rules.
func SweepStale() {
	dead := func(s string) bool {
		pid, err := strconv.Atoi(s)
		return err == nil && pid != os.Getpid() && !ProcessAlive(pid)
	}
	dirs, _ := filepath.Glob("/tmp/kt*-*")
	bins, _ := filepath.Glob("/tmp/keelson-bin-*")
	for _, d := range append(dirs, bins...) {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil || !dead(strings.TrimSpace(string(b))) {
			continue
		}
		for _, pid := range PidsWithArg(d) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		mounts.UnmountUnder(d)
		_ = os.RemoveAll(d)
	}
	for _, c := range CgroupControllers() {
		entries, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", c))
		for _, e := range entries {
			if m := staleCgroupRE.FindStringSubmatch(e.Name()); m != nil && dead(m[1]) {
				for _, pid := range cgroupPids("/" + e.Name()) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				RemoveCgroup("/" + e.Name())
			}
		}
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if m := staleBridgeRE.FindStringSubmatch(i.Name); m != nil && dead(m[1]) {
			_ = exec.Command("ip", "link", "delete", i.Name).Run()
		}
	}
	for _, name := range iptablesNetworks() {
		if m := staleBridgeRE.FindStringSubmatch(name); m != nil && dead(m[1]) {
			sweepIPTables(name)
		}
	}
}

// markOwner records the test process that owns dir, for SweepStale.
func markOwner(dir string) {
	_ = os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// iptablesNetworks lists the CNI network names that tag iptables rules.
func iptablesNetworks() []string {
	seen := map[string]bool{}
	var out []string
	re := regexp.MustCompile(`name: \\"([^"\\]+)\\"`)
	for _, table := range []string{"nat", "filter"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	return out
}
