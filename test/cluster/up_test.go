package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keelson/keelson/test/images"
)

// holdDir, when set, makes TestUp bring the cluster up for people (make cluster-up)
// and hold it until SIGTERM or SIGINT (make cluster-down); it writes there the
// kubeconfig, the nodes' keelson sockets and a `ready` file.
var holdDir = flag.String("cluster.hold-dir", "", "TestUp: run the cluster until SIGTERM, describing it in this directory")

func TestUp(t *testing.T) {
	if *holdDir == "" {
		t.Skip("only for make cluster-up (-cluster.hold-dir)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The conformance specs' images too, when agnhost is built, for people running
	// e2e.test against the cluster by hand.
	if imgs, err := images.ConformanceImages(); err == nil {
		_ = reg.PushAll(imgs)
	}
	c := startCluster(t)
	var env strings.Builder
	fmt.Fprintf(&env, "export KUBECONFIG=%s\n", c.cp.Kubeconfig)
	for i, nd := range c.nodes {
		fmt.Fprintf(&env, "# %s: ip %s, netns %s, keelson socket %s (crictl --runtime-endpoint unix://%s)\n",
			nd.name, nd.ip, c.net.ns[i], nd.k.Socket, nd.k.Socket)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(*holdDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("env", env.String())
	write("ready", "")
	t.Cleanup(func() { _ = os.Remove(filepath.Join(*holdDir, "ready")) })
	<-ctx.Done()
	t.Log("cluster-down: stopping")
}
