package main

import (
	"context"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// notify sends state to systemd when keelson runs as a Type=notify service
// (NOTIFY_SOCKET is set); elsewhere it does nothing.
func notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		klog.V(2).InfoS("systemd notification failed", "state", state, "err", err)
	}
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval, as long
// as keelson answers a CRI Version call on its own socket: a daemon whose gRPC
// server is wedged gets restarted by systemd; one whose containerd is away does not
// (it recovers by itself, and Status tells kubelet). It returns when ctx ends.
func watchdog(ctx context.Context, socket string) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		klog.ErrorS(err, "systemd watchdog: no client for the CRI socket")
		return
	}
	defer conn.Close()
	client := runtimeapi.NewRuntimeServiceClient(conn)
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, interval/2)
		_, err := client.Version(callCtx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			notify(sd.SdNotifyWatchdog)
		} else if ctx.Err() == nil {
			klog.ErrorS(err, "systemd watchdog: keelson does not answer on its own socket; not pinging")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
