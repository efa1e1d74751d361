// Command echoserver is keelson's test server image: an HTTP server (default :8080)
// that answers every request with the request line and the host name, and a TCP
// echo server (default :9000). Ports come from HTTP_PORT and TCP_PORT.
// `echoserver get URL` is a client instead: it prints the body of a GET (the image's
// static busybox wget crashes resolving even a numeric address).
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		get(os.Args[2])
		return
	}
	httpPort, tcpPort := env("HTTP_PORT", "8080"), env("TCP_PORT", "9000")
	host, _ := os.Hostname()
	go func() {
		l, err := net.Listen("tcp", ":"+tcpPort)
		if err != nil {
			log.Fatal(err)
		}
		for {
			c, err := l.Accept()
			if err != nil {
				log.Fatal(err)
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\nhost=%s\n", r.Method, r.URL.Path, host)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	log.Printf("echoserver: http :%s, tcp :%s", httpPort, tcpPort)
	log.Fatal(http.ListenAndServe(":"+httpPort, nil))
}

func get(url string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
