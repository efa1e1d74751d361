package integration

import (
	"fmt"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

// BenchmarkImageListAndStatus measures ListImages and ImageStatus over the CRI socket
// with 200 images present (kubelet calls ListImages every 30s and ImageStatus per
// container start). Run: go test -run '^$' -bench ImageList ./test/integration/
func BenchmarkImageListAndStatus(b *testing.B) {
	harness.RequireRoot(b)
	const n = 200
	r, err := registry.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for i := range n {
		layer, err := images.Layer([]images.File{{Path: fmt.Sprintf("data/%d", i), Data: []byte(fmt.Sprint(i))}})
		if err != nil {
			b.Fatal(err)
		}
		img, err := images.Image(v1.Config{Cmd: []string{"true"}}, layer)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Push(fmt.Sprintf("docker.io/keelson/bench%d:1", i), img); err != nil {
			b.Fatal(err)
		}
	}
	opts := harness.Options{Registry: r}
	k := harness.Prepare(b, opts)
	k.Start(opts)
	ctx := harness.Ctx(b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := k.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: fmt.Sprintf("docker.io/keelson/bench%d:1", i)}}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.Run("ListImages", func(b *testing.B) {
		for b.Loop() {
			resp, err := k.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
			if err != nil || len(resp.Images) != n {
				b.Fatalf("%d images, %v", len(resp.GetImages()), err)
			}
		}
	})
	b.Run("ImageStatus", func(b *testing.B) {
		i := 0
		for b.Loop() {
			resp, err := k.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: fmt.Sprintf("docker.io/keelson/bench%d:1", i%n)}})
			if err != nil || resp.Image == nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
