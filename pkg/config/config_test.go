package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValidAndRoundTrips(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config does not validate: %v", err)
	}
	out, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	// Every key documented: the printed default has a comment line per key.
	for _, key := range []string{"root_dir", "socket_group", "tcp_address", "pull_progress_timeout", "sandbox_image", "binary_name", "conf_dir"} {
		if !strings.Contains(string(out), key+" = ") {
			t.Errorf("default output lacks %s:\n%s", key, out)
		}
	}
	var back Config
	back = Default()
	if err := Decode(out, &back); err != nil {
		t.Fatalf("printed default does not parse: %v\n%s", err, out)
	}
	if back.Images.PullProgressTimeout.D() != 5*time.Minute || back.GRPC.Socket != "/run/keelson/keelson.sock" {
		t.Errorf("round trip changed values: %+v", back)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		wantErr string // substring; empty = no error
		check   func(t *testing.T, c Config)
	}{
		{
			name: "overrides keep other defaults",
			toml: "state_dir = \"/tmp/k\"\n[grpc]\nsocket = \"/tmp/k/s.sock\"\n[images]\npull_progress_timeout = \"90s\"\n",
			check: func(t *testing.T, c Config) {
				if c.StateDir != "/tmp/k" || c.GRPC.Socket != "/tmp/k/s.sock" || c.Images.PullProgressTimeout.D() != 90*time.Second {
					t.Errorf("overrides not applied: %+v", c)
				}
				if c.RootDir != "/var/lib/keelson" || c.Containerd.Namespace != "keelson" {
					t.Errorf("defaults lost: %+v", c)
				}
			},
		},
		{
			name:    "unknown top-level key names key and line",
			toml:    "root_dir = \"/x\"\n\nrot_dir = \"/y\"\n",
			wantErr: `unknown key "rot_dir" at line 3`,
		},
		{
			name:    "unknown nested key",
			toml:    "[grpc]\nsockt = \"/x\"\n",
			wantErr: `unknown key "grpc.sockt" at line 2`,
		},
		{
			name:    "bad duration",
			toml:    "[images]\npull_progress_timeout = \"soon\"\n",
			wantErr: "invalid duration",
		},
		{
			name:    "syntax error has a line",
			toml:    "root_dir = \n",
			wantErr: "line 1",
		},
		{
			name: "extra handler adds to default and gets defaults",
			toml: "[runtime.handlers.fast]\nbinary_name = \"/usr/bin/crun\"\n",
			check: func(t *testing.T, c Config) {
				if err := c.Validate(); err != nil {
					t.Fatal(err)
				}
				h := c.Runtime.Handlers["fast"]
				if h.RuntimeType != DefaultRuntimeType || h.Root != "/run/keelson/runtime/fast" {
					t.Errorf("handler defaults not filled: %+v", h)
				}
				if _, ok := c.Runtime.Handlers["runc"]; !ok {
					t.Errorf("default runc handler lost")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := Decode([]byte(tt.toml), &c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
	}{
		{"tcp without tls refused", func(c *Config) { c.GRPC.TCPAddress = "0.0.0.0:1234" }, "needs mutual TLS"},
		{"tcp with partial tls refused", func(c *Config) {
			c.GRPC.TCPAddress = "0.0.0.0:1234"
			c.GRPC.TLSCertFile, c.GRPC.TLSKeyFile = "/c", "/k"
		}, "tls_client_ca_file"},
		{"tcp with full tls ok", func(c *Config) {
			c.GRPC.TCPAddress = "0.0.0.0:1234"
			c.GRPC.TLSCertFile, c.GRPC.TLSKeyFile, c.GRPC.TLSClientCAFile = "/c", "/k", "/ca"
		}, ""},
		{"relative state dir", func(c *Config) { c.StateDir = "run" }, "state_dir must be an absolute path"},
		{"unknown default handler", func(c *Config) { c.Runtime.DefaultHandler = "kata" }, `runtime.default_handler "kata" is not among runtime.handlers (runc)`},
		{"systemd cgroups", func(c *Config) { c.Runtime.CgroupDriver = "systemd" }, ""},
		{"unknown cgroup driver", func(c *Config) { c.Runtime.CgroupDriver = "cgroupv2" }, "runtime.cgroup_driver must be"},
		{"no containerd at all", func(c *Config) { c.Containerd.Binary = "" }, "containerd.binary is required"},
		{"external containerd needs no binary", func(c *Config) { c.Containerd.Binary = ""; c.Containerd.Address = "/run/containerd/containerd.sock" }, ""},
		{"log level range", func(c *Config) { c.LogLevel = 11 }, "log_level"},
		{"cache dir derived", func(c *Config) { c.RootDir = "/r" }, ""},
		{"oci_version for an old crun", func(c *Config) {
			c.Runtime.Handlers["crun"] = RuntimeHandler{BinaryName: "/usr/bin/crun", OCIVersion: "1.1.0"}
		}, ""},
		{"oci_version not a version", func(c *Config) {
			c.Runtime.Handlers["crun"] = RuntimeHandler{BinaryName: "/usr/bin/crun", OCIVersion: "latest"}
		}, `runtime.handlers.crun.oci_version "latest"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	c := Default()
	c.RootDir = "/r"
	_ = c.Validate()
	if c.CNI.CacheDir != "/r/cni/cache" {
		t.Errorf("cache dir = %q", c.CNI.CacheDir)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml"), false); err != nil {
		t.Errorf("missing default file should give defaults, got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), true); err == nil {
		t.Errorf("missing explicit file should fail")
	}
	p := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(p, []byte("[cni]\nbin_dir = [\"/x\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, true)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"cni.bin_dir" at line 2`) {
		t.Errorf("error should name the file, key and line: %v", err)
	}
}
