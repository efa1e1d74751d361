package validate

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/pkg/cap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container checks a CreateContainer config (the pod's config is already valid).
func Container(cfg *runtimeapi.ContainerConfig, h Host) error {
	if cfg == nil {
		return invalid("config", "is missing")
	}
	if cfg.GetMetadata() == nil {
		return invalid("config.metadata", "is missing")
	}
	if err := identifier("config.metadata.name", cfg.GetMetadata().GetName()); err != nil {
		return err
	}
	img := cfg.GetImage().GetImage()
	if img == "" {
		return invalid("config.image.image", "is empty")
	}
	if err := plainText("config.image.image", img, false); err != nil {
		return err
	}
	if err := process(cfg); err != nil {
		return err
	}
	if p := cfg.GetLogPath(); p != "" {
		if err := plainText("config.log_path", p, true); err != nil {
			return err
		}
		if path.IsAbs(p) || !isLocal(p) {
			return invalid("config.log_path", "%q must be relative to the pod's log directory and stay inside it", p)
		}
	}
	if err := Mounts("config.mounts", cfg.GetMounts()); err != nil {
		return err
	}
	for i, d := range cfg.GetDevices() {
		f := fmt.Sprintf("config.devices[%d]", i)
		if err := absPath(f+".host_path", d.GetHostPath()); err != nil {
			return err
		}
		if d.GetContainerPath() != "" {
			if err := absPath(f+".container_path", d.GetContainerPath()); err != nil {
				return err
			}
		}
	}
	if err := stringMap("config.labels", cfg.GetLabels()); err != nil {
		return err
	}
	if err := stringMap("config.annotations", cfg.GetAnnotations()); err != nil {
		return err
	}
	if err := enum("config.stop_signal", cfg.GetStopSignal(), runtimeapi.Signal_name); err != nil {
		return err
	}
	lx := cfg.GetLinux()
	if err := Resources("config.linux.resources", lx.GetResources(), h); err != nil {
		return err
	}
	return containerSecurity("config.linux.security_context", lx.GetSecurityContext())
}

// process checks what reaches execve: no NUL anywhere, sane env keys, a bounded size.
func process(cfg *runtimeapi.ContainerConfig) error {
	size := 0
	arg := func(f, a string) error {
		size += len(a)
		if len(a) >= maxArgStrLen {
			return invalid(f, "is %d bytes long; execve takes at most %d", len(a), maxArgStrLen-1)
		}
		return noNUL(f, a)
	}
	for i, a := range cfg.GetCommand() {
		if err := arg(fmt.Sprintf("config.command[%d]", i), a); err != nil {
			return err
		}
	}
	for i, a := range cfg.GetArgs() {
		if err := arg(fmt.Sprintf("config.args[%d]", i), a); err != nil {
			return err
		}
	}
	for i, kv := range cfg.GetEnvs() {
		f := fmt.Sprintf("config.envs[%d]", i)
		if len(kv.GetKey())+len(kv.GetValue())+1 >= maxArgStrLen {
			return invalid(f, "%s=… is %d bytes long; execve takes at most %d", kv.GetKey(), len(kv.GetKey())+len(kv.GetValue())+1, maxArgStrLen-1)
		}
		size += len(kv.GetKey()) + len(kv.GetValue())
		if strings.ContainsAny(kv.GetKey(), "=\x00") {
			return invalid(f+".key", "%q contains '=' or NUL", kv.GetKey())
		}
		if err := noNUL(f+".value", string(kv.GetValue())); err != nil {
			return err
		}
	}
	if size > maxArgBytes {
		return invalid("config", "command, args and envs are %d bytes together; at most %d are allowed", size, maxArgBytes)
	}
	if wd := cfg.GetWorkingDir(); wd != "" {
		if err := noNUL("config.working_dir", wd); err != nil {
			return err
		}
		if !path.IsAbs(wd) {
			return invalid("config.working_dir", "%q is not an absolute path", wd)
		}
	}
	return nil
}

// procFiles are the files under /proc a container may get a bind mount over (what
// lxcfs provides), as runc allows; anything else at or under /proc would hide or
// replace the container's own procfs.
var procFiles = []string{
	"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
	"/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/pressure/cpu",
	"/proc/pressure/io", "/proc/pressure/memory", "/proc/sys/kernel/ns_last_pid",
}

// Mounts checks the container's volume mounts.
func Mounts(field string, ms []*runtimeapi.Mount) error {
	seen := map[string]bool{}
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m == nil {
			return invalid(f, "is empty")
		}
		// kubelet passes absolute mount paths as written: judge them cleaned (a ".."
		// cannot leave the container's root, which runc resolves it inside).
		if err := absPathUnclean(f+".container_path", m.GetContainerPath()); err != nil {
			return err
		}
		dst := path.Clean(m.GetContainerPath())
		if dst == "/" {
			return invalid(f+".container_path", "%q would hide the container's root filesystem", m.GetContainerPath())
		}
		if (dst == "/proc" || strings.HasPrefix(dst, "/proc/")) && !slices.Contains(procFiles, dst) {
			return invalid(f+".container_path", "%q would replace the container's /proc (only lxcfs-style files such as /proc/meminfo may be mounted there)", m.GetContainerPath())
		}
		if seen[dst] {
			return invalid(f+".container_path", "%q is the target of another mount too", dst)
		}
		seen[dst] = true
		if ref := m.GetImage().GetImage(); ref == "" {
			if err := absPath(f+".host_path", m.GetHostPath()); err != nil {
				return err
			}
		} else {
			if err := plainText(f+".image.image", ref, false); err != nil {
				return err
			}
			if !m.GetReadonly() {
				return invalid(f+".readonly", "is false for an image volume; image volumes are read-only (kubelet always sets it)")
			}
			if sub := m.GetImageSubPath(); sub != "" {
				if err := plainText(f+".image_sub_path", sub, true); err != nil {
					return err
				}
				if strings.HasPrefix(sub, "/") || slices.Contains(strings.Split(sub, "/"), "..") {
					return invalid(f+".image_sub_path", "%q is not a relative path inside the image", sub)
				}
			}
		}
		if err := enum(f+".propagation", m.GetPropagation(), runtimeapi.MountPropagation_name); err != nil {
			return err
		}
		for j, o := range m.GetMountOptions() {
			if err := plainText(fmt.Sprintf("%s.mount_options[%d]", f, j), o, false); err != nil {
				return err
			}
		}
	}
	return nil
}

var knownCaps = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range cap.Known() {
		m[c] = true
	}
	return m
}()

func containerSecurity(field string, sc *runtimeapi.LinuxContainerSecurityContext) error {
	if sc == nil {
		return nil
	}
	if err := ids(field, sc.GetRunAsUser(), sc.GetRunAsGroup(), sc.GetSupplementalGroups()); err != nil {
		return err
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return invalid(field+".run_as_group", "is set without run_as_user or run_as_username")
	}
	if err := plainText(field+".run_as_username", sc.GetRunAsUsername(), false); err != nil {
		return err
	}
	for _, list := range []struct {
		field string
		caps  []string
	}{{field + ".capabilities.add_capabilities", sc.GetCapabilities().GetAddCapabilities()},
		{field + ".capabilities.drop_capabilities", sc.GetCapabilities().GetDropCapabilities()},
		{field + ".capabilities.add_ambient_capabilities", sc.GetCapabilities().GetAddAmbientCapabilities()}} {
		for i, c := range list.caps {
			name := strings.ToUpper(strings.TrimSpace(c))
			if name == "ALL" {
				continue
			}
			if !strings.HasPrefix(name, "CAP_") {
				name = "CAP_" + name
			}
			if !knownCaps[name] {
				return invalid(fmt.Sprintf("%s[%d]", list.field, i), "%q is not a Linux capability", c)
			}
		}
	}
	ns := sc.GetNamespaceOptions()
	if err := enum(field+".namespace_options.pid", ns.GetPid(), runtimeapi.NamespaceMode_name); err != nil {
		return err
	}
	if ns.GetPid() == runtimeapi.NamespaceMode_TARGET && ns.GetTargetId() == "" {
		return invalid(field+".namespace_options.target_id", "is empty with PID namespace mode TARGET")
	}
	if err := userns(field+".namespace_options.userns_options", ns.GetUsernsOptions()); err != nil {
		return err
	}
	if err := SELinuxOption(field+".selinux_options", sc.GetSelinuxOptions()); err != nil {
		return err
	}
	if err := profile(field+".seccomp", sc.GetSeccomp()); err != nil {
		return err
	}
	if err := profile(field+".apparmor", sc.GetApparmor()); err != nil {
		return err
	}
	for _, l := range []struct {
		field string
		paths []string
	}{{field + ".masked_paths", sc.GetMaskedPaths()}, {field + ".readonly_paths", sc.GetReadonlyPaths()}} {
		for i, p := range l.paths {
			if err := absPath(fmt.Sprintf("%s[%d]", l.field, i), p); err != nil {
				return err
			}
		}
	}
	return nil
}

// isLocal is filepath.IsLocal for slash paths: relative, not empty, no "..".
func isLocal(p string) bool {
	if p == "" || path.IsAbs(p) {
		return false
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return false
		}
	}
	return true
}

// CheckpointLocation checks CheckpointContainerRequest.location: an absolute, clean
// path of a file to write, in an existing directory.
func CheckpointLocation(field, loc string) error {
	if loc == "" {
		return invalid(field, "is empty: the checkpoint archive's path is needed")
	}
	if err := plainText(field, loc, true); err != nil {
		return err
	}
	if !filepath.IsAbs(loc) || filepath.Clean(loc) != loc {
		return invalid(field, "%q must be an absolute, clean path", loc)
	}
	if fi, err := os.Stat(filepath.Dir(loc)); err != nil || !fi.IsDir() {
		return invalid(field, "%q: its directory does not exist", loc)
	}
	if fi, err := os.Lstat(loc); err == nil && !fi.Mode().IsRegular() {
		return invalid(field, "%q exists and is not a regular file", loc)
	}
	return nil
}
