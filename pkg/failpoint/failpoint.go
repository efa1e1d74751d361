//go:build failpoints

// Package failpoint lets tests stop keelson at named points of its RPCs, to prove
// that a crash or a slow step anywhere leaves nothing a restart and a retry cannot
// clean up. They exist only in a binary built with `-tags failpoints` (the test
// harness builds one); there, the environment switches points on:
//
//	KEELSON_FAILPOINTS="sandbox/run/after-cni=crash,container/start/after-task=sleep:3s"
//
// Actions: crash (SIGKILL keelson itself), sleep:<duration>, error (the step fails).
// A production build has no failpoints: Hit is an empty function.
package failpoint

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// EnvVar names the environment variable that switches failpoints on.
const EnvVar = "KEELSON_FAILPOINTS"

var points = parse(os.Getenv(EnvVar))

func parse(spec string) map[string]string {
	out := map[string]string{}
	for _, item := range strings.Split(spec, ",") {
		name, action, ok := strings.Cut(strings.TrimSpace(item), "=")
		if ok && name != "" {
			out[name] = action
		}
	}
	return out
}

// Hit runs the action configured for name, if any.
func Hit(name string) error {
	action, ok := points[name]
	if !ok {
		return nil
	}
	klog.InfoS("Failpoint hit", "name", name, "action", action)
	switch {
	case action == "crash":
		klog.Flush()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	case action == "error":
		return fmt.Errorf("failpoint %s", name)
	case strings.HasPrefix(action, "sleep:"):
		d, err := time.ParseDuration(strings.TrimPrefix(action, "sleep:"))
		if err == nil {
			time.Sleep(d)
		}
	}
	return nil
}
