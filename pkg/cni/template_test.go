package cni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A conf template is rendered with the pod CIDR kubelet reports, into the file that
// sorts first in the conf dir; a change of CIDR renders it again.
func TestConfTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template.conflist")
	if err := os.WriteFile(tmpl, []byte(`{"cniVersion":"1.1.0","name":"k","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[{{range $i, $r := .PodCIDRRanges}}{{if $i}},{{end}}[{"subnet":"{{$r}}"}]{{end}}],"routes":[{{range $i, $r := .Routes}}{{if $i}},{{end}}{"dst":"{{$r}}"}{{end}}]}}],"first":"{{.PodCIDR}}"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(dir, "net.d")
	m := New(Options{ConfDir: confDir, ConfTemplate: tmpl, PodCIDRFile: filepath.Join(dir, "pod-cidr")})
	if err := m.SetPodCIDR("10.251.3.0/24,fd00:3::/64"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(confDir, TemplateOutput))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`[{"subnet":"10.251.3.0/24"}],[{"subnet":"fd00:3::/64"}]`, `{"dst":"0.0.0.0/0"},{"dst":"::/0"}`, `"first":"10.251.3.0/24"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rendered config lacks %s:\n%s", want, b)
		}
	}
	if err := m.SetPodCIDR("10.251.4.0/24"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(confDir, TemplateOutput)); !strings.Contains(string(b), "10.251.4.0/24") || strings.Contains(string(b), "10.251.3.0/24") {
		t.Errorf("not rendered again for the new CIDR:\n%s", b)
	}

	bad := filepath.Join(dir, "bad.conflist")
	os.WriteFile(bad, []byte(`{{.NoSuchField}}`), 0o644)
	m = New(Options{ConfDir: confDir, ConfTemplate: bad})
	if err := m.SetPodCIDR("10.251.5.0/24"); err == nil || !strings.Contains(err.Error(), "cni.conf_template") {
		t.Errorf("a template naming an unknown field: %v", err)
	}
}
