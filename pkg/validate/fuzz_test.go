package validate

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzPodSandbox checks that whatever a pod config holds, validation does not panic,
// and that what it accepts cannot inject: no line break or blank in what is written
// to hosts and resolv.conf, no CNI_ARGS separator in the pod's identity, no sysctl
// that leaves /proc/sys.
func FuzzPodSandbox(f *testing.F) {
	f.Add("web-0", "default", "uid-1", "web-0", "10.96.0.10", "svc.cluster.local", "ndots:5", int32(80), int32(8080), "net.core.somaxconn", "1024", "/kubepods/pod1")
	f.Add("a;IP=1", "ns", "u", "h\nx", "1.1.1.1\nnameserver 2.2.2.2", "a b", "x y", int32(0), int32(70000), "net/../../x", "1\n2", "kubepods.slice")
	f.Fuzz(func(t *testing.T, name, ns, uid, hostname, server, search, option string, cport, hport int32, sysctl, value, parent string) {
		cfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid},
			Hostname:     hostname,
			DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{server}, Searches: []string{search}, Options: []string{option}},
			PortMappings: []*runtimeapi.PortMapping{{ContainerPort: cport, HostPort: hport}},
			Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: parent, Sysctls: map[string]string{sysctl: value}},
		}
		if PodSandbox(cfg, Host{CgroupDriver: "cgroupfs"}) != nil {
			return
		}
		for _, v := range []string{hostname, server, search, option} {
			if strings.ContainsAny(v, " \t\r\n\x00") {
				t.Fatalf("accepted %q, which would add to a file line", v)
			}
		}
		for _, v := range []string{name, ns, uid} {
			if strings.ContainsAny(v, ";=") {
				t.Fatalf("accepted %q into CNI_ARGS", v)
			}
		}
		p := filepath.Join("/proc/sys", strings.ReplaceAll(NormalizeSysctl(sysctl), ".", "/"))
		if !strings.HasPrefix(p, "/proc/sys/") || strings.ContainsAny(value, "\n\x00") {
			t.Fatalf("accepted sysctl %q=%q (%s)", sysctl, value, p)
		}
		if cport < 1 || cport > 65535 || hport < 0 || hport > 65535 {
			t.Fatalf("accepted ports %d:%d", hport, cport)
		}
	})
}

// FuzzPodSandboxProto feeds whole configs decoded from arbitrary bytes: validation
// must never panic on what a gRPC client can send.
func FuzzPodSandboxProto(f *testing.F) {
	seed, _ := proto.Marshal(goodPod())
	f.Add(seed)
	cseed, _ := proto.Marshal(goodContainer())
	f.Add(cseed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var pod runtimeapi.PodSandboxConfig
		if proto.Unmarshal(b, &pod) == nil {
			_ = PodSandbox(&pod, host)
		}
		var c runtimeapi.ContainerConfig
		if proto.Unmarshal(b, &c) == nil {
			_ = Container(&c, host)
			_ = Resources("r", c.GetLinux().GetResources(), Host{CgroupV2: true})
		}
	})
}

// FuzzContainerPaths checks that accepted mounts and log paths stay where they must.
func FuzzContainerPaths(f *testing.F) {
	f.Add("/data", "/var/lib/data", "app/0.log", "0-3")
	f.Add("/proc", "/proc", "../x", "a-b")
	f.Fuzz(func(t *testing.T, dst, src, logPath, cpus string) {
		c := goodContainer()
		c.Mounts = []*runtimeapi.Mount{{ContainerPath: dst, HostPath: src}}
		c.LogPath = logPath
		c.Linux.Resources.CpusetCpus = cpus
		if Container(c, Host{}) != nil {
			return
		}
		clean := filepath.Clean(dst)
		if !strings.HasPrefix(dst, "/") || clean == "/" || clean == "/proc" || strings.Contains(dst, "\x00") {
			t.Fatalf("accepted mount target %q", dst)
		}
		if strings.HasPrefix(clean, "/proc/") && !slices.Contains(procFiles, clean) {
			t.Fatalf("accepted a mount over %q", dst)
		}
		if logPath != "" && (filepath.IsAbs(logPath) || !filepath.IsLocal(logPath)) {
			t.Fatalf("accepted log path %q", logPath)
		}
		if _, err := ParseCPUList(cpus); cpus != "" && err != nil {
			t.Fatalf("accepted cpuset %q: %v", cpus, err)
		}
	})
}
