package integration

import (
	"io"
	"net/http"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"google.golang.org/grpc/status"
)

func grpcCode(err error) string { return status.Code(err).String() }

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var (
	containerdProcessKill     = containerd.WithProcessKill
	containerdSnapshotCleanup = containerd.WithSnapshotCleanup
)
