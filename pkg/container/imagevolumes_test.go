package container

import (
	"slices"
	"testing"

	"github.com/keelson/keelson/pkg/store"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The image volume index follows the containers the service knows: remembered at
// create and load, forgotten at removal and rollback.
func TestImageVolumeUsers(t *testing.T) {
	s := &Service{store: store.NewStore[*Container]()}
	withVolumes := func(id string, images ...string) *Container {
		c := &Container{}
		c.ID, c.Config = id, &runtimeapi.ContainerConfig{}
		for _, img := range images {
			c.Config.Mounts = append(c.Config.Mounts, &runtimeapi.Mount{Image: &runtimeapi.ImageSpec{ImageRef: img}})
		}
		c.Config.Mounts = append(c.Config.Mounts, &runtimeapi.Mount{HostPath: "/data"})
		return c
	}
	a, b, plain := withVolumes("a", "sha256:x", "sha256:y"), withVolumes("b", "sha256:x"), withVolumes("c")
	for _, c := range []*Container{a, b, plain} {
		s.remember(c)
	}
	if got := s.ImageVolumeUsers("sha256:x"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("users of x: %v", got)
	}
	s.forget(a)
	if got := s.ImageVolumeUsers("sha256:x"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("users of x after a is forgotten: %v", got)
	}
	if got := s.ImageVolumeUsers("sha256:y"); len(got) != 0 {
		t.Errorf("users of y after a is forgotten: %v", got)
	}
	s.forget(b)
	s.forget(plain)
	if len(s.volumeUsers.users) != 0 {
		t.Errorf("index not empty: %v", s.volumeUsers.users)
	}
}
