package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/images"
)

const imagesUsage = "usage: keelson images pull [--socket PATH] [--creds USER:PASSWORD] REF"

// runImages is `keelson images pull REF`: a PullImage over the CRI socket that shows
// the daemon's progress (ImageStatus verbose info) while it runs.
func runImages(args []string, out io.Writer) int {
	if len(args) == 0 || args[0] != "pull" {
		fmt.Fprintln(os.Stderr, imagesUsage)
		return 2
	}
	fs := flag.NewFlagSet("keelson images pull", flag.ContinueOnError)
	socket := fs.String("socket", config.Default().GRPC.Socket, "keelson's CRI socket")
	creds := fs.String("creds", "", "registry credentials, USER:PASSWORD (default: keelson's images.auth_file)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, imagesUsage)
		return 2
	}
	ref := fs.Arg(0)
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	client := runtimeapi.NewImageServiceClient(conn)
	req := &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}
	if *creds != "" {
		user, password, _ := strings.Cut(*creds, ":")
		req.Auth = &runtimeapi.AuthConfig{Username: user, Password: password}
	}
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		resp, err := client.PullImage(ctx, req)
		done <- result{resp.GetImageRef(), err}
	}()
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastLine time.Time
	for {
		select {
		case r := <-done:
			if tty {
				fmt.Fprint(out, "\r\033[K")
			}
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "pulling %s: %v\n", ref, r.err)
				return 1
			}
			fmt.Fprintf(out, "pulled %s: %s in %s\n", ref, r.id, time.Since(start).Round(100*time.Millisecond))
			return 0
		case <-tick.C:
		}
		st, err := client.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: true})
		var p images.PullProgress
		if err != nil || json.Unmarshal([]byte(st.GetInfo()["pullProgress"]), &p) != nil {
			continue
		}
		switch {
		case tty:
			fmt.Fprint(out, "\r\033[K"+progressLine(p, 30))
		case time.Since(lastLine) >= 2*time.Second: // a log, not a terminal: a line now and then
			fmt.Fprintln(out, progressLine(p, 0))
			lastLine = time.Now()
		}
	}
}

// progressLine renders a pull's progress, with a bar of width characters (none: 0).
func progressLine(p images.PullProgress, width int) string {
	var b strings.Builder
	b.WriteString(p.Ref + " ")
	if width > 0 && p.TotalBytes > 0 {
		filled := int(min(p.Bytes, p.TotalBytes) * int64(width) / p.TotalBytes)
		b.WriteString("[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] ")
	}
	b.WriteString(size(p.Bytes))
	if p.TotalBytes > 0 {
		b.WriteString(" / " + size(p.TotalBytes))
	}
	fmt.Fprintf(&b, ", %d layers, %s", p.Layers, time.Since(p.StartedAt).Round(100*time.Millisecond))
	return b.String()
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
