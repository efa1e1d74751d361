package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// freeSubnet picks a 10.x.y.0/24 that no interface on the host uses, so test
// instances (also those of other test processes running at the same time) never
// share a pod network.
func freeSubnet(t testing.TB) string {
	t.Helper()
	used := map[[2]byte]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4[0] == 10 {
				used[[2]byte{ip4[1], ip4[2]}] = true
			}
		}
	}
	for range 1000 {
		k := [2]byte{byte(200 + rand.IntN(50)), byte(rand.IntN(250))}
		if !used[k] {
			return fmt.Sprintf("10.%d.%d.0/24", k[0], k[1])
		}
	}
	t.Fatal("no free 10.x.y.0/24 for a test network")
	return ""
}
