// Command testimages builds keelson's test images (test/images) and either pushes them
// to a registry or serves them from its own registry on 127.0.0.1, writing the
// hosts.toml mirror config that makes their real names resolve there.
//
//	go run ./hack/testimages push  --registry 127.0.0.1:5000
//	go run ./hack/testimages serve --addr 127.0.0.1:5000 --hosts-dir /etc/keelson/certs.d
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	imgs, err := images.All()
	check(err)
	switch os.Args[1] {
	case "push":
		fs := flag.NewFlagSet("push", flag.ExitOnError)
		reg := fs.String("registry", "127.0.0.1:5000", "plain-HTTP registry host:port")
		_ = fs.Parse(os.Args[2:])
		for _, ref := range sortedNames(imgs) {
			parsed, err := name.ParseReference(ref)
			check(err)
			dst, err := name.NewTag(*reg+"/"+parsed.Context().RepositoryStr()+":"+parsed.Identifier(), name.Insecure)
			check(err)
			check(remote.Write(dst, imgs[ref]))
			d, _ := imgs[ref].Digest()
			fmt.Printf("%s -> %s (%s)\n", ref, dst, d)
		}
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:5000", "address to serve on")
		hostsDir := fs.String("hosts-dir", "", "write hosts.toml mirror config here (e.g. keelson's images.registry_config_dir)")
		_ = fs.Parse(os.Args[2:])
		r, err := registry.StartOn(*addr)
		check(err)
		check(r.PushAll(imgs))
		if *hostsDir != "" {
			check(r.WriteMirrorConfig(*hostsDir))
		}
		fmt.Printf("registry on %s serving:\n", r.Addr)
		for _, ref := range sortedNames(imgs) {
			fmt.Println("  " + ref)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = r.Close()
	default:
		usage()
	}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testimages push --registry host:port | serve [--hosts-dir dir]")
	os.Exit(2)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "testimages:", err)
		os.Exit(1)
	}
}
