// Command webserver stands in for the web server images of Kubernetes' e2e tests
// (registry.k8s.io/e2e-test-images/nginx and httpd, cri-tools' hostnet-nginx) in the
// images critest uses (test/images.CRIToolsImages). It answers every GET with 200 and
// a small page, on PORT (default 80). It behaves as the real servers do where the
// cri-tools specs look: its process is named after the file it runs from (installed
// as /usr/sbin/nginx, `pidof nginx` finds it), it writes /var/run/<name>.pid, an
// nginx's command line reads "nginx: master process ...", and it logs a line naming
// itself at start (the httpd log check looks for "httpd").
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const masterArgv0 = "nginx: master process nginx -g daemon off;"

func main() {
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	name := filepath.Base(exe)
	// Real nginx rewrites its argv; re-executing with that argv[0] gives the same
	// /proc/<pid>/cmdline and keeps the pid (and the comm, from exe's file name).
	if name == "nginx" && !strings.Contains(os.Args[0], "master process") {
		log.Fatal(syscall.Exec(exe, []string{masterArgv0}, os.Environ()))
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	_ = os.MkdirAll("/var/run", 0o755)
	_ = os.WriteFile("/var/run/"+name+".pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	page := fmt.Sprintf("<html><body><h1>Welcome to %s!</h1></body></html>\n", name)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	})
	fmt.Fprintf(os.Stderr, "%s: listening on :%s (pid %d)\n", name, port, os.Getpid())
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
