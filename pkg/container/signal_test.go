package container

import (
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		cfg   runtimeapi.Signal
		image string
		want  syscall.Signal
		cri   runtimeapi.Signal
	}{
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "", syscall.SIGTERM, runtimeapi.Signal_SIGNAL_SIGTERM},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGQUIT", syscall.SIGQUIT, runtimeapi.Signal_SIGNAL_SIGQUIT},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "9", syscall.SIGKILL, runtimeapi.Signal_SIGNAL_SIGKILL},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "bogus", syscall.SIGTERM, runtimeapi.Signal_SIGNAL_SIGTERM},
		{runtimeapi.Signal_SIGNAL_SIGUSR1, "SIGQUIT", syscall.SIGUSR1, runtimeapi.Signal_SIGNAL_SIGUSR1},
		{runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3, "", syscall.Signal(37), runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3},
		{runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS2, "", syscall.Signal(62), runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS2},
		{runtimeapi.Signal_SIGNAL_SIGRTMAX, "", syscall.Signal(64), runtimeapi.Signal_SIGNAL_SIGRTMAX},
	} {
		name := stopSignalName(tc.cfg, tc.image)
		if got := stopSignal(name); got != tc.want {
			t.Errorf("%v over image %q: signal %v (%q), want %v", tc.cfg, tc.image, got, name, tc.want)
		}
		c := &Container{Metadata: Metadata{StopSignal: name}}
		if got := c.CRIStopSignal(); got != tc.cri {
			t.Errorf("%v over image %q: reported %v, want %v", tc.cfg, tc.image, got, tc.cri)
		}
	}
}
