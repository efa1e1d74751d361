// Command nonewprivs stands in for registry.k8s.io/e2e-test-images/nonewprivs: a
// setuid-root program that prints its effective uid. Run as a non-root user it prints
// 0 unless no_new_privs is set on the process.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
