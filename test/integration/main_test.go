package integration

import (
	"os"
	"testing"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/registry"
)

// reg is the registry shared by the tests that need the standard images only.
var reg *registry.Registry

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithRegistry(m, func(r *registry.Registry) { reg = r }))
}
