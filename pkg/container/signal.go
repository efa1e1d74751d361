package container

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/moby/sys/signal"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stopSignalName is the signal that stops a container: the pod's stop_signal
// (KEP-4960) over the image's STOPSIGNAL; "" means SIGTERM.
func stopSignalName(cfg runtimeapi.Signal, image string) string {
	if cfg == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return image
	}
	name := strings.TrimPrefix(cfg.String(), "SIGNAL_")
	name = strings.Replace(name, "PLUS", "+", 1)
	return strings.Replace(name, "MINUS", "-", 1)
}

// stopSignal parses a container's stop signal name (SIGTERM when empty or unknown).
func stopSignal(name string) syscall.Signal {
	if name != "" {
		if s, err := signal.ParseSignal(name); err == nil {
			return s
		}
	}
	return syscall.SIGTERM
}

// Linux's real-time signal range as runc and the moby signal table number it.
const sigRTMin, sigRTMax = syscall.Signal(34), syscall.Signal(64)

// CRIStopSignal is a container's stop signal as ContainerStatus reports it.
func (c *Container) CRIStopSignal() runtimeapi.Signal {
	s := stopSignal(c.StopSignal)
	var name string
	switch {
	case s == sigRTMin:
		name = "SIGRTMIN"
	case s == sigRTMax:
		name = "SIGRTMAX"
	case s > sigRTMin && s-sigRTMin <= 15:
		name = fmt.Sprintf("SIGRTMINPLUS%d", s-sigRTMin)
	case s > sigRTMin && s < sigRTMax:
		name = fmt.Sprintf("SIGRTMAXMINUS%d", sigRTMax-s)
	default:
		name = unix.SignalName(s)
	}
	return runtimeapi.Signal(runtimeapi.Signal_value["SIGNAL_"+name])
}
