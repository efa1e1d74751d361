package runtime

import (
	"strings"
	"testing"
)

func TestChildEnvKeepsSystemdsVariablesForKeelson(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("WATCHDOG_USEC", "60000000")
	t.Setenv("PATH", "/usr/bin")
	t.Setenv("KEELSON_TEST_KEEP", "1")
	env := strings.Join(childEnv("/opt/keelson/bin"), "\n")
	for _, gone := range []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC="} {
		if strings.Contains(env, gone) {
			t.Errorf("containerd's environment has %s", gone)
		}
	}
	for _, kept := range []string{"KEELSON_TEST_KEEP=1", "PATH=/opt/keelson/bin:/usr/bin"} {
		if !strings.Contains(env, kept) {
			t.Errorf("containerd's environment lacks %s", kept)
		}
	}
}
