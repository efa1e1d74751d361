package harness

import (
	"fmt"
	"os"
	"testing"

	"github.com/keelson/keelson/test/registry"
)

// MainWithRegistry runs a test package as Main does, with the standard test images
// served (as root) by a registry handed to use before the tests run.
func MainWithRegistry(m *testing.M, use func(*registry.Registry)) int {
	return Main(func() int {
		if os.Geteuid() == 0 {
			r, err := registry.StartWithTestImages()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer r.Close()
			use(r)
		}
		return m.Run()
	})
}
