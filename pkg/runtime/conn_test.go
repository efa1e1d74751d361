package runtime

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keelson/keelson/pkg/metrics"
)

// keelson_containerd_reconnects_total counts containerd answering again after it was
// found unreachable (or marked down), not the first connection nor repeated healthy
// checks.
func TestContainerdReconnectsCounted(t *testing.T) {
	c := &Conn{Address: "unix:///run/test/containerd.sock"}
	reconnects := func() float64 { return testutil.ToFloat64(metrics.ContainerdReconnects) }
	start := reconnects()
	step := func(what string, ready bool, want float64) {
		t.Helper()
		if ready {
			c.setHealth(true, "", "") // what Check records when containerd answers
		} else {
			c.setHealth(false, ReasonContainerdUnreachable, "containerd does not answer")
		}
		if got := reconnects() - start; got != want {
			t.Errorf("after %s: keelson_containerd_reconnects_total moved by %v, want %v", what, got, want)
		}
	}
	step("the first successful check", true, 0)
	step("a second successful check", true, 0)
	step("containerd unreachable", false, 0)
	step("containerd unreachable again", false, 0)
	step("containerd answering again", true, 1)
	step("a healthy check after the reconnect", true, 1)
	c.MarkDown(ReasonContainerdExited, "the supervised containerd exited")
	step("containerd restarted after exiting", true, 2)
}

// A containerd that was never reached is not reconnecting when it first answers.
func TestContainerdFirstConnectNotAReconnect(t *testing.T) {
	c := &Conn{Address: "unix:///run/test/containerd.sock"}
	start := testutil.ToFloat64(metrics.ContainerdReconnects)
	c.setHealth(false, ReasonContainerdUnreachable, "not yet")
	c.setHealth(true, "", "")
	if got := testutil.ToFloat64(metrics.ContainerdReconnects) - start; got != 0 {
		t.Errorf("the first connection counted as %v reconnects", got)
	}
}
