// Package validate checks CRI requests before anything acts on them. Every field
// that reaches the host — a file keelson writes, an argument a CNI plugin parses, a
// cgroup value runc writes — is checked here, so a bad request is refused with
// InvalidArgument naming the field, before a name is reserved or anything is created.
//
// The rules follow what kubelet's own validation lets through (a request kubelet can
// send is never refused) and what the kernel, runc and the CNI plugins would refuse
// late, with a worse message, or not at all. The functions are pure: facts about the
// host come in through Host.
package validate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/errdefs"
)

// Host is what validation needs to know about the node.
type Host struct {
	CgroupV2 bool
	// CgroupDriver is "cgroupfs" or "systemd": it decides what a cgroup parent looks like.
	CgroupDriver string
	// CPUs and Mems are the online CPUs and memory nodes; nil: unknown (not checked).
	CPUs, Mems map[int]bool
}

// Limits on sizes that no real client comes near, so that a request cannot make
// keelson or containerd hold or store something huge.
const (
	maxNameLen        = 253       // metadata names, like a Kubernetes object name
	maxHostnameLen    = 64        // the kernel's HOST_NAME_MAX
	maxMapBytes       = 256 << 10 // labels or annotations, as the API server allows
	maxDNSSearches    = 32        // kubelet's MaxDNSSearchPaths
	maxDNSSearchChars = 2048      // kubelet's MaxDNSSearchListChars
	maxDNSServers     = 32
	maxArgBytes       = 2 << 20   // command, args and env together: execve's limit (RLIMIT_STACK/4 at 8 MiB)
	maxArgStrLen      = 128 << 10 // one argument or KEY=value: the kernel's MAX_ARG_STRLEN
)

// invalid is the error for a bad field: it names the field and wraps InvalidArgument.
func invalid(field, format string, a ...any) error {
	return fmt.Errorf("%s %s: %w", field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
}

// plainText refuses what must never reach a file, an argument list or a log line
// unescaped: invalid UTF-8, NUL and other control characters. allowSpace lets
// spaces and tabs through (sysctl values such as kernel.sem's "250 32000 32 128").
func plainText(field, v string, allowSpace bool) error {
	if !utf8.ValidString(v) {
		return invalid(field, "%q is not valid UTF-8", v)
	}
	for _, r := range v {
		switch {
		case r == ' ' || r == '\t':
			if !allowSpace {
				return invalid(field, "%q contains whitespace", v)
			}
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return invalid(field, "%q contains a control character (%U)", v, r)
		}
	}
	return nil
}

// noNUL refuses NUL, which no path, argument or environment entry can carry to
// execve or open.
func noNUL(field, v string) error {
	if strings.IndexByte(v, 0) >= 0 {
		return invalid(field, "%q contains a NUL byte", v)
	}
	return nil
}

// identifier checks a metadata name, namespace or UID: non-empty, bounded, printable,
// and free of what CNI_ARGS uses as separators (';' between pairs, '=' inside them),
// which would let a pod name set other CNI arguments (host-local honours IP=).
func identifier(field, v string) error {
	if v == "" {
		return invalid(field, "is empty")
	}
	if len(v) > maxNameLen {
		return invalid(field, "is %d bytes long; at most %d are allowed", len(v), maxNameLen)
	}
	if err := plainText(field, v, false); err != nil {
		return err
	}
	if i := strings.IndexAny(v, ";=,/\\\"'`$"); i >= 0 {
		return invalid(field, "%q contains %q, which is not allowed in a name", v, v[i])
	}
	return nil
}

// stringMap bounds labels or annotations and refuses keys that are empty or not
// plain text (values are free-form, as in Kubernetes).
func stringMap(field string, m map[string]string) error {
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
		if k == "" {
			return invalid(field, "has an empty key")
		}
		if err := plainText(field+" key", k, false); err != nil {
			return err
		}
		if err := noNUL(fmt.Sprintf("%s[%q]", field, k), v); err != nil {
			return err
		}
	}
	if size > maxMapBytes {
		return invalid(field, "total %d bytes; at most %d are allowed", size, maxMapBytes)
	}
	return nil
}

// absPath requires an absolute path without ".." elements or control characters.
func absPathUnclean(field, p string) error {
	if p == "" {
		return invalid(field, "is empty")
	}
	if !strings.HasPrefix(p, "/") {
		return invalid(field, "%q is not an absolute path", p)
	}
	return plainText(field, p, true)
}

func absPath(field, p string) error {
	if p == "" {
		return invalid(field, "is empty")
	}
	if !strings.HasPrefix(p, "/") {
		return invalid(field, "%q is not an absolute path", p)
	}
	if err := plainText(field, p, true); err != nil {
		return err
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return invalid(field, "%q has a \"..\" element", p)
		}
	}
	return nil
}

// enum refuses a protobuf enum value that has no name (proto3 keeps unknown values).
func enum[E ~int32](field string, v E, names map[int32]string) error {
	if _, ok := names[int32(v)]; !ok {
		return invalid(field, "%d is not a known value", int32(v))
	}
	return nil
}
