package validate

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Kernel and runc bounds on CPU settings (kubelet never sends values outside them).
const (
	minCFSPeriod = 1000    // 1 ms, the kernel's minimum cfs period and quota
	maxCFSPeriod = 1000000 // 1 s
	minShares    = 2
	maxShares    = 262144
)

var (
	hugepageSize = regexp.MustCompile(`^[1-9][0-9]*(KB|MB|GB|TB|PB)$`)
	// unifiedKey is a cgroup v2 interface file name: controller.file, no path.
	unifiedKey = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z0-9_.]+$`)
)

// Resources checks a container's (or pod's) Linux resources: every value one that
// the kernel accepts, so none fails late at start or at update.
func Resources(field string, r *runtimeapi.LinuxContainerResources, h Host) error {
	if r == nil {
		return nil
	}
	if p := r.GetCpuPeriod(); p != 0 && (p < minCFSPeriod || p > maxCFSPeriod) {
		return invalid(field+".cpu_period", "%d is out of range %d-%d (microseconds; 0: the default)", p, minCFSPeriod, maxCFSPeriod)
	}
	if q := r.GetCpuQuota(); q != 0 && q != -1 && q < minCFSPeriod {
		return invalid(field+".cpu_quota", "%d must be at least %d microseconds (0: unset, -1: unlimited)", q, minCFSPeriod)
	}
	if s := r.GetCpuShares(); s != 0 && (s < minShares || s > maxShares) {
		return invalid(field+".cpu_shares", "%d is out of range %d-%d (0: unset)", s, minShares, maxShares)
	}
	mem, swap := r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes()
	if mem < 0 {
		return invalid(field+".memory_limit_in_bytes", "%d is negative (0: unlimited)", mem)
	}
	if swap < -1 {
		return invalid(field+".memory_swap_limit_in_bytes", "%d is negative (0: unset, -1: unlimited)", swap)
	}
	if swap > 0 && mem > 0 && swap < mem {
		return invalid(field+".memory_swap_limit_in_bytes", "%d is below memory_limit_in_bytes %d (it counts memory plus swap)", swap, mem)
	}
	if a := r.GetOomScoreAdj(); a < -1000 || a > 1000 {
		return invalid(field+".oom_score_adj", "%d is out of range -1000-1000", a)
	}
	if err := cpuList(field+".cpuset_cpus", r.GetCpusetCpus(), h.CPUs, "CPU"); err != nil {
		return err
	}
	if err := cpuList(field+".cpuset_mems", r.GetCpusetMems(), h.Mems, "memory node"); err != nil {
		return err
	}
	for i, l := range r.GetHugepageLimits() {
		if !hugepageSize.MatchString(l.GetPageSize()) {
			return invalid(fmt.Sprintf("%s.hugepage_limits[%d].page_size", field, i), "%q is not a page size such as 2MB or 1GB", l.GetPageSize())
		}
	}
	if len(r.GetUnified()) > 0 && !h.CgroupV2 {
		return invalid(field+".unified", "needs cgroup v2, and this node runs cgroup v1")
	}
	for k, v := range r.GetUnified() {
		f := fmt.Sprintf("%s.unified[%q]", field, k)
		if len(k) > 64 || !unifiedKey.MatchString(k) {
			return invalid(f, "is not a cgroup v2 interface file name (controller.file)")
		}
		if strings.HasPrefix(k, "cgroup.") && k != "cgroup.max.depth" && k != "cgroup.max.descendants" {
			return invalid(f, "is a cgroup core file a container may not set")
		}
		if err := plainText(f, v, true); err != nil {
			return err
		}
	}
	return nil
}

// cpuList checks a cpuset list ("0-3,6") and, when the host's set is known, that it
// names only what exists there.
func cpuList(field, list string, host map[int]bool, what string) error {
	if list == "" {
		return nil
	}
	set, err := ParseCPUList(list)
	if err != nil {
		return invalid(field, "%q: %v", list, err)
	}
	if host == nil {
		return nil
	}
	for _, c := range set {
		if !host[c] {
			return invalid(field, "%q names %s %d, which this node does not have online", list, what, c)
		}
	}
	return nil
}

// maxCPUIndex bounds a cpuset's numbers (Linux's NR_CPUS is at most 8192).
const maxCPUIndex = 8191

// ParseCPUList parses the kernel's list format ("0-3,6,8-9") into sorted numbers.
func ParseCPUList(s string) ([]int, error) {
	seen := map[int]bool{}
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpuIndex(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = cpuIndex(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q is reversed", part)
			}
		}
		for i := a; i <= b; i++ {
			seen[i] = true
		}
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	sort.Ints(out)
	return out, nil
}

func cpuIndex(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number or a range of numbers", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > maxCPUIndex {
		return 0, fmt.Errorf("%q is out of range 0-%d", s, maxCPUIndex)
	}
	return v, nil
}

// ReadCPUSet reads a kernel list file such as /sys/devices/system/cpu/online; nil if
// it cannot be read or parsed (then nothing is checked against it).
func ReadCPUSet(path string) map[int]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	list, err := ParseCPUList(string(b))
	if err != nil {
		return nil
	}
	m := make(map[int]bool, len(list))
	for _, c := range list {
		m[c] = true
	}
	return m
}
