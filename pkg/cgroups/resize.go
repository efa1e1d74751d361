package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Limits are the CPU and memory limits of a pod's cgroup; zero fields are left as
// they are.
type Limits struct {
	CPUShares   uint64 // cgroup v1 cpu.shares (v2: converted to cpu.weight)
	CPUQuota    int64  // microseconds per period; -1 or less: no quota
	CPUPeriod   uint64 // microseconds
	MemoryLimit int64  // bytes
}

// ParentDir is the directory, relative to a hierarchy's root, of a pod's cgroup
// parent as kubelet sends it: a cgroupfs path, or under systemd a slice's name or its
// cgroup path.
func ParentDir(driver, parent string) string {
	if parent == "" {
		return ""
	}
	if driver == Systemd {
		return ExpandSlice(path.Base(parent))
	}
	return path.Clean("/" + parent)
}

// Resize applies limits to the pod cgroup dir (ParentDir's form) under root (Root,
// or a test's directory). ok is false when the cgroup does not exist (yet: kubelet
// makes it; runc makes a parent that is missing when the pod's first task starts).
// Under systemd, the slice's unit properties stay as kubelet set them: these writes
// reach the cgroup at once, and systemd keeps kubelet's values as the record.
func Resize(root string, v2 bool, dir string, l Limits) (ok bool, err error) {
	if dir == "" || dir == "/" {
		return false, nil
	}
	at := func(controller string) string {
		if v2 {
			return filepath.Join(root, dir)
		}
		return filepath.Join(root, controller, dir)
	}
	if _, err := os.Stat(at("cpu")); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	write := func(controller, file, value string) error {
		p := filepath.Join(at(controller), file)
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("setting %s to %s: %w", p, value, err)
		}
		return nil
	}
	var errs []error
	if l.CPUShares > 0 {
		if v2 {
			errs = append(errs, write("cpu", "cpu.weight", strconv.FormatUint(weight(l.CPUShares), 10)))
		} else {
			errs = append(errs, write("cpu", "cpu.shares", strconv.FormatUint(l.CPUShares, 10)))
		}
	}
	if l.CPUQuota != 0 || l.CPUPeriod != 0 {
		errs = append(errs, setQuota(write, v2, l))
	}
	if l.MemoryLimit > 0 {
		if v2 {
			errs = append(errs, write("memory", "memory.max", strconv.FormatInt(l.MemoryLimit, 10)))
		} else {
			errs = append(errs, write("memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryLimit, 10)))
		}
	}
	return true, errors.Join(errs...)
}

// setQuota sets the CFS quota and period. On v1 they are two files, and the kernel
// refuses a period that the current quota does not fit: the other order is tried.
func setQuota(write func(controller, file, value string) error, v2 bool, l Limits) error {
	quota := "max"
	if l.CPUQuota > 0 {
		quota = strconv.FormatInt(l.CPUQuota, 10)
	}
	if v2 {
		value := quota
		if l.CPUPeriod > 0 {
			value += " " + strconv.FormatUint(l.CPUPeriod, 10)
		}
		return write("cpu", "cpu.max", value)
	}
	if quota == "max" {
		quota = "-1"
	}
	steps := []func() error{}
	if l.CPUPeriod > 0 {
		steps = append(steps, func() error { return write("cpu", "cpu.cfs_period_us", strconv.FormatUint(l.CPUPeriod, 10)) })
	}
	if l.CPUQuota != 0 {
		steps = append(steps, func() error { return write("cpu", "cpu.cfs_quota_us", quota) })
	}
	if err := runAll(steps); err == nil || len(steps) < 2 || !errors.Is(err, unix.EINVAL) {
		return err
	}
	return runAll([]func() error{steps[1], steps[0]})
}

func runAll(steps []func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// weight converts cgroup v1 cpu.shares [2, 262144] to cgroup v2 cpu.weight
// [1, 10000], as runc does.
func weight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}
