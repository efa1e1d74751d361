package images

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestIndexGroupsNamesByID(t *testing.T) {
	x := newIndex()
	a := &imageContent{ID: "sha256:" + repeat("a"), Size: 10}
	b := &imageContent{ID: "sha256:" + repeat("b"), Size: 20}
	x.set("docker.io/library/busybox:1", a)
	x.set("docker.io/library/busybox@sha256:"+repeat("c"), a)
	x.set(a.ID, a)
	x.set("docker.io/library/busybox:2", a)
	x.set("docker.io/library/other:1", b)

	img := x.byID(a.ID)
	if img == nil || len(img.RepoTags) != 2 || len(img.RepoDigests) != 1 || img.Size != 10 {
		t.Fatalf("image a = %+v", img)
	}
	// Retagging moves the name to the other image.
	x.set("docker.io/library/busybox:2", b)
	if got := x.byID(a.ID).RepoTags; len(got) != 1 || got[0] != "docker.io/library/busybox:1" {
		t.Errorf("after retag a's tags = %v", got)
	}
	if got := x.byID(b.ID).RepoTags; len(got) != 2 {
		t.Errorf("after retag b's tags = %v", got)
	}
	// An image disappears with its last name.
	for _, n := range x.namesOf(a.ID) {
		x.remove(n)
	}
	if x.byID(a.ID) != nil || len(x.list()) != 1 {
		t.Errorf("image a still indexed: %v", x.list())
	}
	if img, err := x.byIDPrefix(repeat("b")[:5]); err != nil || img == nil {
		t.Errorf("prefix lookup: %v %v", img, err)
	}
	x.set("x:1", &imageContent{ID: "sha256:b" + repeat("d")[1:]})
	if _, err := x.byIDPrefix("b"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ambiguous prefix: %v", err)
	}
}

func repeat(c string) string {
	out := ""
	for range 64 {
		out += c
	}
	return out
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"registry.k8s.io/pause:3.10":      "registry.k8s.io/pause:3.10",
		"localhost:5000/a/b":              "localhost:5000/a/b:latest",
		"busybox:1@sha256:" + repeat("a"): "docker.io/library/busybox@sha256:" + repeat("a"),
	} {
		got, err := Normalize(in)
		if err != nil || got.String() != want {
			t.Errorf("Normalize(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", " ", "a/UPPER", "a:b:c"} {
		if _, err := Normalize(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Normalize(%q) error = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestCredentials(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("bob:pw"))
	tests := []struct {
		name       string
		auth       *Auth
		host       string
		user, pass string
	}{
		{"none", nil, "r.io", "", ""},
		{"user/password", &Auth{Username: "u", Password: "p"}, "r.io", "u", "p"},
		{"base64", &Auth{Auth: b64}, "r.io", "bob", "pw"},
		{"identity token", &Auth{IdentityToken: "tok"}, "r.io", "", "tok"},
		{"server address matches", &Auth{Username: "u", Password: "p", ServerAddress: "https://r.io/v1/"}, "r.io", "u", "p"},
		{"server address differs", &Auth{Username: "u", Password: "p", ServerAddress: "other.io"}, "r.io", "", ""},
		{"docker hub aliases", &Auth{Username: "u", Password: "p", ServerAddress: "https://index.docker.io/v1/"}, "registry-1.docker.io", "u", "p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p, err := tt.auth.credentials(tt.host)
			if err != nil || u != tt.user || p != tt.pass {
				t.Errorf("credentials = %q %q %v, want %q %q", u, p, err, tt.user, tt.pass)
			}
		})
	}
	if _, _, err := (&Auth{Auth: "!!"}).credentials("r.io"); err == nil {
		t.Errorf("bad base64 accepted")
	}
}

func TestAuthFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	if a, err := loadAuthFile(p, "r.io"); a != nil || err != nil {
		t.Errorf("missing file: %v %v", a, err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("bob:pw"))
	os.WriteFile(p, []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"`+b64+`"},"127.0.0.1:5000":{"username":"a","password":"b"}}}`), 0o600)
	a, err := loadAuthFile(p, "registry-1.docker.io")
	if err != nil || a == nil {
		t.Fatalf("docker hub entry: %v %v", a, err)
	}
	if u, pw, _ := a.credentials("registry-1.docker.io"); u != "bob" || pw != "pw" {
		t.Errorf("docker hub creds = %s %s", u, pw)
	}
	if a, _ := loadAuthFile(p, "127.0.0.1:5000"); a == nil || a.Username != "a" {
		t.Errorf("host entry: %v", a)
	}
	if a, _ := loadAuthFile(p, "elsewhere"); a != nil {
		t.Errorf("unrelated host got creds: %v", a)
	}
}
