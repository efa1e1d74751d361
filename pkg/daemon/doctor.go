package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/doctor"
	"github.com/keelson/keelson/pkg/runtime"
)

// Doctor audits the node for what no sandbox or container owns and, with fix,
// removes it. It uses the running keelson's containerd if there is one, else starts
// the supervised containerd for the audit. Fixing needs keelson stopped (it would race
// with creations in flight). It returns how many findings remain.
func Doctor(ctx context.Context, cfg config.Config, fix bool, out io.Writer) (int, error) {
	running := false
	if f, err := lockFile(filepath.Join(cfg.StateDir, "keelson.lock"), "state dir "+cfg.StateDir); err != nil {
		running = true
	} else {
		defer f.Close()
	}
	if fix && running {
		return 0, errors.New("keelson is running on this state dir: stop it before `keelson doctor --fix` (an audit without --fix is fine)")
	}
	if running {
		fmt.Fprintln(out, "note: keelson is running; objects being created right now may show up below")
	}

	address := cfg.Containerd.Address
	if address == "" {
		sup := supervisorFor(cfg)
		address = sup.Child.Address
		probe, err := runtime.Dial(ctx, address, cfg.Containerd.Namespace, 2*time.Second, cfg.Containerd.CallTimeout.D())
		if err == nil {
			probe.Close()
		} else {
			if err := sup.Start(); err != nil {
				return 0, err
			}
			defer sup.Stop(context.WithoutCancel(ctx))
		}
	}
	conn, err := runtime.Dial(ctx, address, cfg.Containerd.Namespace, cfg.Containerd.ConnectTimeout.D(), cfg.Containerd.CallTimeout.D())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	network := cni.New(cniOptions(cfg))
	_ = network.Load()

	node := &doctor.Node{Conn: conn, Client: conn.Client, Snapshotter: cfg.Containerd.Snapshotter, Network: network, RootDir: cfg.RootDir, StateDir: cfg.StateDir}
	if running {
		node.ShimMinAge = time.Minute
	}
	findings, err := node.Audit(ctx)
	if err != nil {
		return 0, err
	}
	for _, f := range findings {
		fmt.Fprintln(out, "orphan", f)
	}
	if !fix || len(findings) == 0 {
		fmt.Fprintf(out, "%d orphaned objects\n", len(findings))
		return len(findings), nil
	}
	for _, err := range doctor.Fix(ctx, findings) {
		fmt.Fprintln(out, "could not fix:", err)
	}
	left, err := node.Audit(ctx)
	if err != nil {
		return 0, err
	}
	for _, f := range left {
		fmt.Fprintln(out, "still orphaned", f)
	}
	fmt.Fprintf(out, "fixed %d, %d left\n", len(findings)-len(left), len(left))
	return len(left), nil
}
