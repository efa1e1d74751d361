package doctor

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// orphanRules finds iptables rules the CNI plugins tagged with keelson's network name
// and a container ID (comments `name: "<network>" id: "<id>"`) whose sandbox keelson
// no longer knows, and the chains only they used. Rules of other networks (other
// runtimes, other keelsons) are never touched.
func orphanRules(known map[string]bool, network string) []Finding {
	if network == "" {
		return nil
	}
	nameTag := fmt.Sprintf(`name: \"%s\"`, network)
	var out []Finding
	for _, table := range []string{"nat", "filter"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		chains := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "-A ") {
				continue
			}
			id := idRE.FindString(line)
			if id == "" || known[id] || !strings.Contains(line, "id: ") || !strings.Contains(line, nameTag) {
				continue
			}
			args := SplitRule(strings.TrimPrefix(line, "-A "))
			if len(args) == 0 {
				continue
			}
			tbl, rule := table, args
			out = append(out, Finding{Kind: "iptables", What: table + ": " + line, fix: func(ctx context.Context) error {
				return iptables(ctx, append([]string{"-t", tbl, "-D"}, rule...)...)
			}})
			// Per-sandbox chains the rule jumps to (CNI-<hash>, CNI-DN-<hash>).
			for i, a := range args {
				if (a == "-j" || a == "-g") && i+1 < len(args) && strings.HasPrefix(args[i+1], "CNI-") &&
					!strings.HasPrefix(args[i+1], "CNI-HOSTPORT") {
					chains[args[i+1]] = true
				}
			}
		}
		for chain := range chains {
			tbl, c := table, chain
			out = append(out, Finding{Kind: "iptables", What: fmt.Sprintf("%s: chain %s", table, chain), fix: func(ctx context.Context) error {
				if err := iptables(ctx, "-t", tbl, "-F", c); err != nil {
					return err
				}
				return iptables(ctx, "-t", tbl, "-X", c)
			}})
		}
	}
	return out
}

func iptables(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
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
