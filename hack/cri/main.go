// Command cri is a minimal CRI client for trying keelson by hand where crictl is not
// installed (the Go module proxy does not serve cri-tools):
//
//	go run ./hack/cri [--socket /run/keelson/keelson.sock] version|status|runtime-config
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	socket := flag.String("socket", "/run/keelson/keelson.sock", "CRI socket")
	timeout := flag.Duration("timeout", 10*time.Second, "call timeout")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: cri [--socket path] version|status|runtime-config")
		os.Exit(2)
	}
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	check(err)
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var resp any
	switch flag.Arg(0) {
	case "version":
		resp, err = rt.Version(ctx, &runtimeapi.VersionRequest{})
	case "status":
		resp, err = rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	case "runtime-config":
		resp, err = rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", flag.Arg(0))
		os.Exit(2)
	}
	check(err)
	out, _ := json.MarshalIndent(resp, "", "  ")
	fmt.Println(string(out))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri:", err)
		os.Exit(1)
	}
}
