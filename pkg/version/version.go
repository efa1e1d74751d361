// Package version reports keelson's own version.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X github.com/keelson/keelson/pkg/version.Version=...".
var Version = ""

// CRIVersion is the CRI API version keelson serves.
const CRIVersion = "v1"

// Get returns keelson's version: the linker-set one, else the module version, else "dev".
func Get() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
