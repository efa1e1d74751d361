// Command pgrep is a small stand-in for procps' pgrep (neither of Debian's busybox
// builds has one) in the busybox image critest uses: it prints the pids of the
// processes whose name (or, with -f, whole command line) matches the pattern, -l adding
// the name, and exits 1 when none does.
package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

func main() {
	var long, full bool
	var pattern string
	for _, a := range os.Args[1:] {
		switch {
		case a == "-l":
			long = true
		case a == "-f":
			full = true
		case strings.HasPrefix(a, "-") && pattern == "":
			fmt.Fprintf(os.Stderr, "pgrep: unsupported option %s\n", a)
			os.Exit(2)
		default:
			pattern = a
		}
	}
	re, err := regexp.Compile(pattern)
	if err != nil || pattern == "" {
		fmt.Fprintln(os.Stderr, "usage: pgrep [-l] [-f] PATTERN")
		os.Exit(2)
	}
	entries, _ := os.ReadDir("/proc")
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		subject := name
		if full {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			subject = string(bytes.TrimRight(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), " "))
		}
		if !re.MatchString(subject) {
			continue
		}
		found = true
		if long {
			fmt.Printf("%d %s\n", pid, name)
		} else {
			fmt.Println(pid)
		}
	}
	if !found {
		os.Exit(1)
	}
}
