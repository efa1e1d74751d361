package validate

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cgroups"
)

// PodSandbox checks a RunPodSandbox config.
func PodSandbox(cfg *runtimeapi.PodSandboxConfig, h Host) error {
	if cfg == nil {
		return invalid("config", "is missing")
	}
	md := cfg.GetMetadata()
	if md == nil {
		return invalid("config.metadata", "is missing")
	}
	for _, f := range []struct{ field, v string }{
		{"config.metadata.name", md.GetName()},
		{"config.metadata.namespace", md.GetNamespace()},
		{"config.metadata.uid", md.GetUid()},
	} {
		if err := identifier(f.field, f.v); err != nil {
			return err
		}
	}
	lx := cfg.GetLinux()
	ns := lx.GetSecurityContext().GetNamespaceOptions()
	hostNet := ns.GetNetwork() == runtimeapi.NamespaceMode_NODE
	hostIPC := ns.GetIpc() == runtimeapi.NamespaceMode_NODE
	// With host networking the pod gets the node's name and UTS namespace: the field
	// is not used, so it is not judged.
	if !hostNet {
		if err := Hostname("config.hostname", cfg.GetHostname()); err != nil {
			return err
		}
	}
	if d := cfg.GetLogDirectory(); d != "" {
		if err := absPath("config.log_directory", d); err != nil {
			return err
		}
	}
	if err := DNSConfig("config.dns_config", cfg.GetDnsConfig()); err != nil {
		return err
	}
	if err := PortMappings("config.port_mappings", cfg.GetPortMappings()); err != nil {
		return err
	}
	if err := stringMap("config.labels", cfg.GetLabels()); err != nil {
		return err
	}
	if err := stringMap("config.annotations", cfg.GetAnnotations()); err != nil {
		return err
	}
	if err := CgroupParent("config.linux.cgroup_parent", lx.GetCgroupParent(), h); err != nil {
		return err
	}
	if err := Sysctls("config.linux.sysctls", lx.GetSysctls(), hostNet, hostIPC); err != nil {
		return err
	}
	if err := podNamespaces("config.linux.security_context.namespace_options", ns); err != nil {
		return err
	}
	if err := podSecurity("config.linux.security_context", lx.GetSecurityContext()); err != nil {
		return err
	}
	for _, r := range []struct {
		field string
		r     *runtimeapi.LinuxContainerResources
	}{{"config.linux.overhead", lx.GetOverhead()}, {"config.linux.resources", lx.GetResources()}} {
		if err := Resources(r.field, r.r, h); err != nil {
			return err
		}
	}
	return nil
}

var hostnameLabel = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$`)

// Hostname checks a pod host name: an RFC 1123 name the kernel accepts (at most 64
// bytes), since it is written into the pod's /etc/hostname and /etc/hosts.
func Hostname(field, h string) error {
	if h == "" {
		return nil
	}
	if len(h) > maxHostnameLen {
		return invalid(field, "%q is %d bytes long; host names are at most %d", h, len(h), maxHostnameLen)
	}
	for _, l := range strings.Split(h, ".") {
		if len(l) > 63 || !hostnameLabel.MatchString(l) {
			return invalid(field, "%q is not an RFC 1123 host name (letters, digits and '-', in dot-separated labels of 1-63 characters)", h)
		}
	}
	return nil
}

var dnsLabel = regexp.MustCompile(`^[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?$`)

// DNSConfig checks what becomes the pod's resolv.conf: one line per server, one
// search line, one options line — nothing may add a line or an entry.
func DNSConfig(field string, dns *runtimeapi.DNSConfig) error {
	if dns == nil {
		return nil
	}
	if len(dns.GetServers()) > maxDNSServers {
		return invalid(field+".servers", "has %d entries; at most %d are allowed", len(dns.GetServers()), maxDNSServers)
	}
	for i, s := range dns.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return invalid(fmt.Sprintf("%s.servers[%d]", field, i), "%q is not an IP address", s)
		}
	}
	if n := len(dns.GetSearches()); n > maxDNSSearches {
		return invalid(field+".searches", "has %d entries; at most %d are allowed", n, maxDNSSearches)
	}
	if n := len(strings.Join(dns.GetSearches(), " ")); n > maxDNSSearchChars {
		return invalid(field+".searches", "are %d characters long together; at most %d are allowed", n, maxDNSSearchChars)
	}
	for i, s := range dns.GetSearches() {
		if s == "." { // the root: kubelet's way to say "no search domains" (not the host's)
			continue
		}
		name := strings.TrimSuffix(s, ".")
		ok := name != "" && len(name) <= 253
		for _, l := range strings.Split(name, ".") {
			// No per-label length: Kubernetes checks only the whole name's, and host
			// search domains reach kubelet unchecked.
			ok = ok && dnsLabel.MatchString(l)
		}
		if !ok {
			return invalid(fmt.Sprintf("%s.searches[%d]", field, i), "%q is not a DNS domain name", s)
		}
	}
	for i, o := range dns.GetOptions() {
		f := fmt.Sprintf("%s.options[%d]", field, i)
		if o == "" || len(o) > 255 {
			return invalid(f, "%q must be 1-255 characters", o)
		}
		if err := plainText(f, o, false); err != nil {
			return err
		}
	}
	return nil
}

// PortMappings checks host port mappings as kubelet's validation does.
func PortMappings(field string, pms []*runtimeapi.PortMapping) error {
	for i, pm := range pms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if pm == nil {
			return invalid(f, "is empty")
		}
		if err := enum(f+".protocol", pm.GetProtocol(), runtimeapi.Protocol_name); err != nil {
			return err
		}
		if p := pm.GetContainerPort(); p < 1 || p > 65535 {
			return invalid(f+".container_port", "%d is out of range 1-65535", p)
		}
		if p := pm.GetHostPort(); p < 0 || p > 65535 {
			return invalid(f+".host_port", "%d is out of range 0-65535 (0: not exposed on the node)", p)
		}
		if ip := pm.GetHostIp(); ip != "" {
			if a, err := netip.ParseAddr(ip); err != nil || a.Zone() != "" {
				return invalid(f+".host_ip", "%q is not an IP address", ip)
			}
		}
	}
	return nil
}

// systemdSlice is a slice name runc's systemd driver can expand: dash-separated
// parts, none empty, ending in .slice.
var systemdSlice = regexp.MustCompile(`^[A-Za-z0-9_.:\\]+(-[A-Za-z0-9_.:\\]+)*\.slice$`)

// CgroupParent checks a pod's cgroup parent against the cgroup driver: a path under
// the cgroup root for cgroupfs, a slice name for systemd. A parent of the other
// driver's form would put the pod somewhere nobody expects.
func CgroupParent(field, p string, h Host) error {
	if p == "" {
		return nil
	}
	if err := plainText(field, p, false); err != nil {
		return err
	}
	if h.CgroupDriver == "systemd" {
		// kubelet sends the slice's cgroup path (/kubepods.slice/…/<pod>.slice); a
		// bare slice name is taken too. Either way the last element is the slice.
		slice := path.Base(p)
		if !systemdSlice.MatchString(slice) || strings.Contains(p, "/") && path.Clean(p) != cgroups.ExpandSlice(slice) {
			return invalid(field, "%q is neither a systemd slice name such as kubepods-burstable-pod<uid>.slice nor its cgroup path (runtime.cgroup_driver is systemd; kubelet's cgroupDriver must be systemd too)", p)
		}
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		if systemdSlice.MatchString(p) {
			return invalid(field, "%q is a systemd slice name, but runtime.cgroup_driver is cgroupfs (kubelet's cgroupDriver and keelson's must match)", p)
		}
		return invalid(field, "%q is not an absolute cgroup path (runtime.cgroup_driver is cgroupfs)", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." {
			return invalid(field, "%q has a %q element", p, e)
		}
	}
	return nil
}

// sysctlName is kubelet's pattern for a sysctl name, with '.' or '/' as separators.
var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// NormalizeSysctl returns a sysctl name in its dotted form: when '/' is the
// separator (its first separator is a '/'), '.' in it is part of a component (an
// interface name such as eth0.100) and the two are swapped, as kubelet does.
func NormalizeSysctl(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, name)
}

// SysctlNamespace tells which namespace a sysctl belongs to ("net" or "ipc"), or ""
// for one that is not namespaced and would change the node.
func SysctlNamespace(name string) string {
	n := NormalizeSysctl(name)
	switch {
	case strings.HasPrefix(n, "net."):
		return "net"
	case n == "kernel.sem", strings.HasPrefix(n, "kernel.shm"), strings.HasPrefix(n, "kernel.msg"), strings.HasPrefix(n, "fs.mqueue."):
		return "ipc"
	}
	return ""
}

// Sysctls checks a pod's sysctls: well-formed, namespaced, and not in a namespace the
// pod shares with the node. This holds for pods with and without a pause process.
func Sysctls(field string, sysctls map[string]string, hostNet, hostIPC bool) error {
	for k, v := range sysctls {
		f := fmt.Sprintf("%s[%q]", field, k)
		if len(k) > 253 || !sysctlName.MatchString(k) {
			return invalid(f, "is not a sysctl name")
		}
		if err := plainText(f, v, true); err != nil {
			return err
		}
		switch SysctlNamespace(k) {
		case "":
			return invalid(f, "is not a namespaced sysctl: setting it would change the node (only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* are allowed)")
		case "net":
			if hostNet {
				return invalid(f, "is not allowed with host networking: it would change the node")
			}
		case "ipc":
			if hostIPC {
				return invalid(f, "is not allowed with the host IPC namespace: it would change the node")
			}
		}
	}
	return nil
}

func podNamespaces(field string, ns *runtimeapi.NamespaceOption) error {
	if err := enum(field+".network", ns.GetNetwork(), runtimeapi.NamespaceMode_name); err != nil {
		return err
	}
	if m := ns.GetNetwork(); m != runtimeapi.NamespaceMode_POD && m != runtimeapi.NamespaceMode_NODE {
		return invalid(field+".network", "%v is not POD or NODE", m)
	}
	if m := ns.GetIpc(); m != runtimeapi.NamespaceMode_POD && m != runtimeapi.NamespaceMode_NODE {
		return invalid(field+".ipc", "%v is not POD or NODE", m)
	}
	switch ns.GetPid() {
	case runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_NODE:
	default:
		return invalid(field+".pid", "%v is not POD, CONTAINER or NODE", ns.GetPid())
	}
	if err := userns(field+".userns_options", ns.GetUsernsOptions()); err != nil {
		return err
	}
	if u := ns.GetUsernsOptions(); u != nil && u.GetMode() == runtimeapi.NamespaceMode_POD {
		for kind, m := range map[string]runtimeapi.NamespaceMode{"network": ns.GetNetwork(), "ipc": ns.GetIpc(), "pid": ns.GetPid()} {
			if m == runtimeapi.NamespaceMode_NODE {
				return invalid(field+"."+kind, "is NODE in a pod with its own user namespace: the node's %s namespace belongs to the node's user namespace (hostUsers: false excludes host namespaces)", kind)
			}
		}
	}
	return nil
}

// userns checks user namespace options: NODE (the host's, no mappings) or POD (a
// user namespace of the pod's own, as kubelet sends for hostUsers: false) with one
// uid and one gid mapping, each mapping container ID 0 to a non-root host range.
func userns(field string, u *runtimeapi.UserNamespace) error {
	if u == nil {
		return nil
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return invalid(field, "mode NODE takes no uid or gid mappings")
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
		for _, m := range []struct {
			field string
			list  []*runtimeapi.IDMapping
		}{{field + ".uids", u.GetUids()}, {field + ".gids", u.GetGids()}} {
			if len(m.list) != 1 {
				return invalid(m.field, "has %d mappings; a pod user namespace takes exactly one", len(m.list))
			}
			if err := IDMapping(m.field+"[0]", m.list[0]); err != nil {
				return err
			}
		}
		return nil
	}
	return invalid(field+".mode", "%v is not POD or NODE (a user namespace is the pod's or the node's)", u.GetMode())
}

// maxID is the largest ID a Linux mapping can reach (uid_t, minus the invalid -1).
const maxID = 1<<32 - 1

// IDMapping checks one user namespace mapping: container ID 0 (root in the pod)
// mapped to a host range that does not include the host's root, within uid_t.
func IDMapping(field string, m *runtimeapi.IDMapping) error {
	switch {
	case m.GetContainerId() != 0:
		return invalid(field+".container_id", "is %d; the mapping must start at container ID 0 (root inside the pod)", m.GetContainerId())
	case m.GetHostId() == 0:
		return invalid(field+".host_id", "is 0: mapping the pod's root to the node's root gives no isolation")
	case m.GetLength() == 0:
		return invalid(field+".length", "is 0")
	case uint64(m.GetHostId())+uint64(m.GetLength()) > maxID:
		return invalid(field, "host range %d+%d goes past the largest ID %d", m.GetHostId(), m.GetLength(), uint64(maxID-1))
	}
	return nil
}

func podSecurity(field string, sc *runtimeapi.LinuxSandboxSecurityContext) error {
	if sc == nil {
		return nil
	}
	if err := ids(field, sc.GetRunAsUser(), sc.GetRunAsGroup(), sc.GetSupplementalGroups()); err != nil {
		return err
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil {
		return invalid(field+".run_as_group", "is set without run_as_user")
	}
	if err := SELinuxOption(field+".selinux_options", sc.GetSelinuxOptions()); err != nil {
		return err
	}
	if err := profile(field+".seccomp", sc.GetSeccomp()); err != nil {
		return err
	}
	return profile(field+".apparmor", sc.GetApparmor())
}

// ids checks user and group IDs against the range runc accepts.
func ids(field string, uid, gid *runtimeapi.Int64Value, groups []int64) error {
	check := func(f string, v int64) error {
		if v < 0 || v > math.MaxInt32 {
			return invalid(f, "%d is out of range 0-%d", v, math.MaxInt32)
		}
		return nil
	}
	var errs []error
	if uid != nil {
		errs = append(errs, check(field+".run_as_user", uid.GetValue()))
	}
	if gid != nil {
		errs = append(errs, check(field+".run_as_group", gid.GetValue()))
	}
	for i, g := range groups {
		errs = append(errs, check(fmt.Sprintf("%s.supplemental_groups[%d]", field, i), g))
	}
	return firstErr(errs)
}

// profile checks a seccomp or AppArmor choice's form (whether it can be applied on
// this node is the spec builder's business).
func profile(field string, p *runtimeapi.SecurityProfile) error {
	if p == nil {
		return nil
	}
	if err := enum(field+".profile_type", p.GetProfileType(), runtimeapi.SecurityProfile_ProfileType_name); err != nil {
		return err
	}
	if p.GetProfileType() == runtimeapi.SecurityProfile_Localhost {
		if p.GetLocalhostRef() == "" {
			return invalid(field+".localhost_ref", "is empty for a Localhost profile")
		}
		// The API lets profile names and paths hold spaces; kubelet passes them on.
		return plainText(field+".localhost_ref", p.GetLocalhostRef(), true)
	}
	return nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// ErrInvalid is what every validation error wraps (InvalidArgument).
var ErrInvalid = errdefs.ErrInvalidArgument

// SELinuxOption checks the parts of an SELinux label: plain words; user, role and
// type without ':' (the level, "s0:c1,c2", has its own).
func SELinuxOption(field string, o *runtimeapi.SELinuxOption) error {
	for _, p := range []struct {
		name, v string
		colon   bool
	}{{"user", o.GetUser(), false}, {"role", o.GetRole(), false}, {"type", o.GetType(), false}, {"level", o.GetLevel(), true}} {
		if len(p.v) > 255 {
			return invalid(field+"."+p.name, "is %d bytes long", len(p.v))
		}
		if err := plainText(field+"."+p.name, p.v, false); err != nil {
			return err
		}
		if !p.colon && strings.Contains(p.v, ":") {
			return invalid(field+"."+p.name, "%q contains ':', which separates the parts of a label", p.v)
		}
	}
	return nil
}
