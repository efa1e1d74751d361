package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

// reg is the registry shared by the tests that need the standard images only.
var reg *registry.Registry

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() == 0 {
		r, err := registry.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer r.Close()
		imgs, err := images.All()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := r.PushAll(imgs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		reg = r
	}
	return m.Run()
}
