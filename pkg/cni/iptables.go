package cni

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// Rule is one iptables rule that a CNI plugin (bridge, portmap) tagged with its
// network and container ID in a comment (`name: "<network>" id: "<id>"`).
type Rule struct {
	Table  string
	Line   string   // as iptables-save prints it
	Args   []string // the rule's arguments, without "-A"
	ID     string   // the container (sandbox) ID of its comment
	Chains []string // per-sandbox chains it jumps to (CNI-<hash>, CNI-DN-<hash>)
}

var ruleIDRE = regexp.MustCompile(`id: \\?"([^"\\]+)\\?"`)

// TaggedRules lists the rules of the nat and filter tables whose comment names the
// network (any network if "") and an ID for which match is true. Rules of other
// networks — other runtimes, other keelsons — are never listed.
func TaggedRules(network string, match func(id string) bool) []Rule {
	nameTag := fmt.Sprintf(`name: \"%s\"`, network)
	var out []Rule
	for _, table := range []string{"nat", "filter"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "-A ") || (network != "" && !strings.Contains(line, nameTag)) {
				continue
			}
			m := ruleIDRE.FindStringSubmatch(line)
			if m == nil || !match(m[1]) {
				continue
			}
			args := SplitRule(strings.TrimPrefix(line, "-A "))
			r := Rule{Table: table, Line: line, Args: args, ID: m[1]}
			for i, a := range args {
				if (a == "-j" || a == "-g") && i+1 < len(args) && strings.HasPrefix(args[i+1], "CNI-") &&
					!strings.HasPrefix(args[i+1], "CNI-HOSTPORT") {
					r.Chains = append(r.Chains, args[i+1])
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// DeleteRules deletes the rules, then flushes and deletes the chains they jumped to.
func DeleteRules(ctx context.Context, rules []Rule) error {
	var errs []error
	chains := map[[2]string]bool{}
	for _, r := range rules {
		errs = append(errs, iptables(ctx, append([]string{"-t", r.Table, "-D"}, r.Args...)...))
		for _, c := range r.Chains {
			chains[[2]string{r.Table, c}] = true
		}
	}
	for tc := range chains {
		if err := iptables(ctx, "-t", tc[0], "-F", tc[1]); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, iptables(ctx, "-t", tc[0], "-X", tc[1]))
	}
	return errors.Join(errs...)
}

func iptables(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SplitRule splits an iptables-save rule into arguments, honouring double quotes and
// backslash escapes inside them (what iptables -D needs back).
func SplitRule(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, escaped, have := false, false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && inQuote:
			escaped = true
		case r == '"':
			inQuote = !inQuote
			have = true
		case r == ' ' && !inQuote:
			if have || cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if have || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
