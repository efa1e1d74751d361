// Package selinux gives pods and containers their SELinux labels from the CRI's
// SELinuxOption, through opencontainers/selinux. On a node without SELinux every
// label is empty and nothing is relabeled: the options are accepted and have no
// effect, as with containerd's CRI and CRI-O.
package selinux

import (
	"errors"
	"fmt"
	"syscall"

	goselinux "github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels are a process label and the label of the files it mounts ("" for none).
type Labels struct {
	Process string `json:"process,omitempty"`
	Mount   string `json:"mount,omitempty"`
}

// Labeler is the node's SELinux, or a stand-in in tests.
type Labeler interface {
	Enabled() bool
	// Pod reserves a pod's labels: a fresh MCS level unless opt names one.
	Pod(opt *runtimeapi.SELinuxOption) (Labels, error)
	// Container derives a container's labels from its pod's and its own options
	// (nil: the pod's labels); nothing is reserved: the level is the pod's unless
	// the options name one.
	Container(pod Labels, opt *runtimeapi.SELinuxOption) (Labels, error)
	// Release frees what Pod reserved; Reserve takes it again (at restart).
	Release(Labels)
	Reserve(Labels)
	// Relabel gives path (recursively) the mount label, shared by the pod's
	// containers (shared) or private to one (MCS level).
	Relabel(path string, l Labels, shared bool) error
}

// Host is the node's SELinux.
type Host struct{}

var _ Labeler = Host{}

// Enabled says whether SELinux is on.
func (Host) Enabled() bool { return goselinux.GetEnabled() }

// Pod reserves a pod's labels.
func (Host) Pod(opt *runtimeapi.SELinuxOption) (Labels, error) {
	p, m, err := label.InitLabels(options(opt))
	if err != nil {
		return Labels{}, fmt.Errorf("SELinux labels from %v: %w", opt, err)
	}
	return Labels{Process: p, Mount: m}, nil
}

// Container derives a container's labels.
func (h Host) Container(pod Labels, opt *runtimeapi.SELinuxOption) (Labels, error) {
	if !h.Enabled() || pod.Process == "" {
		return pod, nil
	}
	return derive(pod, opt)
}

// Release frees a pod's MCS level.
func (Host) Release(l Labels) {
	if l.Process != "" {
		goselinux.ReleaseLabel(l.Process)
	}
}

// Reserve marks a pod's MCS level taken (a pod found at start).
func (Host) Reserve(l Labels) {
	if l.Process != "" {
		goselinux.ReserveLabel(l.Process)
	}
}

// Relabel sets path's label; a file system without labels (ENOTSUP) is left alone.
func (Host) Relabel(path string, l Labels, shared bool) error {
	if l.Mount == "" {
		return nil
	}
	if err := label.Relabel(path, l.Mount, shared); err != nil && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("relabeling %s with %s: %w", path, l.Mount, err)
	}
	return nil
}

// derive overrides the pod's labels with the parts opt sets.
func derive(pod Labels, opt *runtimeapi.SELinuxOption) (Labels, error) {
	if opt == nil {
		return pod, nil
	}
	pcon, err := goselinux.NewContext(pod.Process)
	if err != nil {
		return Labels{}, fmt.Errorf("the pod's SELinux label %q: %w", pod.Process, err)
	}
	mcon, err := goselinux.NewContext(pod.Mount)
	if err != nil {
		return Labels{}, fmt.Errorf("the pod's SELinux mount label %q: %w", pod.Mount, err)
	}
	for k, v := range map[string]string{"user": opt.GetUser(), "role": opt.GetRole(), "type": opt.GetType(), "level": opt.GetLevel()} {
		if v == "" {
			continue
		}
		pcon[k] = v
		if k == "user" || k == "level" {
			mcon[k] = v
		}
	}
	return Labels{Process: pcon.Get(), Mount: mcon.Get()}, nil
}

// options turns a CRI SELinuxOption into label.InitLabels options.
func options(opt *runtimeapi.SELinuxOption) []string {
	var out []string
	for k, v := range map[string]string{"user": opt.GetUser(), "role": opt.GetRole(), "type": opt.GetType(), "level": opt.GetLevel()} {
		if v != "" {
			out = append(out, k+":"+v)
		}
	}
	return out
}
