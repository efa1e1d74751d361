package cgroups

import (
	"os"
	"path"
	"strings"
)

// Cgroup drivers: who creates and removes pod and container cgroups.
const (
	Cgroupfs = "cgroupfs" // runc writes the cgroup file system directly
	Systemd  = "systemd"  // runc asks systemd for a scope unit per container
	Auto     = "auto"     // systemd when PID 1 is systemd on cgroup v2, else cgroupfs
)

// ScopePrefix names the scope units of keelson's containers: keelson-<id>.scope.
const ScopePrefix = "keelson"

// DefaultSlice holds pods that name no cgroup parent under the systemd driver.
const DefaultSlice = "system.slice"

// SystemdBooted tells whether systemd is PID 1 (sd_booted's test).
func SystemdBooted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// ResolveDriver turns the configured driver into the one in use.
func ResolveDriver(configured string) string {
	if configured != Auto {
		return configured
	}
	if IsV2() && SystemdBooted() {
		return Systemd
	}
	return Cgroupfs
}

// Path is the cgroupsPath of a sandbox's or container's spec: under the cgroupfs
// driver <parent>/<id> ("" without a parent: containerd's default /<namespace>/<id>);
// under systemd "<parent slice>:keelson:<id>", which runc turns into the scope unit
// keelson-<id>.scope in that slice (the parent may be the slice's name or, as kubelet
// sends it, its cgroup path).
func Path(driver, parent, id string) string {
	if driver == Systemd {
		// kubelet names the slice by its cgroup path; runc wants its name.
		parent = path.Base(parent)
		if parent == "." || parent == "/" {
			parent = DefaultSlice
		}
		return parent + ":" + ScopePrefix + ":" + id
	}
	if parent == "" {
		return ""
	}
	return path.Join(parent, id)
}

// Dir is the directory, relative to a hierarchy's root, that a cgroupsPath names:
// itself for cgroupfs; for the systemd form, the slice expanded the way systemd
// nests slices (a-b-c.slice lives in a.slice/a-b.slice/) and the scope inside it.
func Dir(cgroupsPath string) string {
	slice, rest, ok := strings.Cut(cgroupsPath, ":")
	if !ok {
		return cgroupsPath
	}
	prefix, name, _ := strings.Cut(rest, ":")
	unit := name
	if prefix != "" {
		unit = prefix + "-" + name
	}
	if !strings.HasSuffix(unit, ".slice") {
		unit += ".scope"
	}
	return path.Join(ExpandSlice(slice), unit)
}

// ExpandSlice turns a slice name into its cgroup path: "kubepods-burstable-pod1.slice"
// is /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice. The root
// slice "-.slice" is "/".
func ExpandSlice(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return "/"
	}
	p, prefix := "/", ""
	for _, part := range strings.Split(name, "-") {
		prefix += part
		p = path.Join(p, prefix+".slice")
		prefix += "-"
	}
	return p
}
