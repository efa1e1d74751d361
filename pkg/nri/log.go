package nri

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
)

// klogger sends NRI's own log lines (plugin connections, registrations, timeouts)
// to klog with keelson's, instead of logrus' default output.
type klogger struct{}

func (klogger) Debugf(_ context.Context, format string, args ...any) {
	klog.V(4).InfoS(fmt.Sprintf(format, args...), "component", "nri")
}

func (klogger) Infof(_ context.Context, format string, args ...any) {
	klog.V(2).InfoS(fmt.Sprintf(format, args...), "component", "nri")
}

func (klogger) Warnf(_ context.Context, format string, args ...any) {
	klog.InfoS(fmt.Sprintf(format, args...), "component", "nri", "level", "warning")
}

func (klogger) Errorf(_ context.Context, format string, args ...any) {
	klog.ErrorS(nil, fmt.Sprintf(format, args...), "component", "nri")
}
