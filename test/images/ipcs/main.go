// Command ipcs is a small stand-in for util-linux's ipcs (Debian's busybox has none)
// in the busybox image critest uses: it lists the System V shared memory segments,
// message queues and semaphore arrays of the caller's IPC namespace from
// /proc/sysvipc, in ipcs's column layout. -m, -q and -s select one kind.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

type kind struct {
	flag, file, title string
	header            []string
	// cols picks /proc/sysvipc columns for header (key, id, owner uid, perms in
	// octal as ipcs prints them, ...).
	cols []int
}

var kinds = []kind{
	{"-m", "shm", "Shared Memory Segments", []string{"key", "shmid", "owner", "perms", "bytes", "nattch"}, []int{0, 1, 7, 2, 3, 6}},
	{"-q", "msg", "Message Queues", []string{"key", "msqid", "owner", "perms", "used-bytes", "messages"}, []int{0, 1, 7, 2, 3, 4}},
	{"-s", "sem", "Semaphore Arrays", []string{"key", "semid", "owner", "perms", "nsems"}, []int{0, 1, 4, 2, 3}},
}

func main() {
	want := map[string]bool{}
	for _, a := range os.Args[1:] {
		want[a] = true
	}
	for _, k := range kinds {
		if len(want) > 0 && !want[k.flag] && !want["-a"] {
			continue
		}
		fmt.Printf("\n------ %s --------\n", k.title)
		for _, h := range k.header {
			fmt.Printf("%-10s ", h)
		}
		fmt.Println()
		f, err := os.Open("/proc/sysvipc/" + k.file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header line
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			for i, c := range k.cols {
				if c >= len(fields) {
					continue
				}
				v := fields[c]
				switch i {
				case 0:
					n, _ := strconv.ParseInt(v, 10, 64)
					v = fmt.Sprintf("0x%08x", uint32(n))
				}
				fmt.Printf("%-10s ", v)
			}
			fmt.Println()
		}
		f.Close()
	}
	fmt.Println()
}
