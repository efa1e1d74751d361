package config

import "testing"

// FuzzDecode: no config file, however broken, makes loading panic; what decodes
// either validates or is refused with an error.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("root_dir = '/var/lib/keelson'\n[grpc]\n  socket = '/run/k.sock'\n"))
	f.Add([]byte("[runtime.handlers.kata]\nruntime_type = 'io.containerd.kata.v2'\n"))
	f.Add([]byte("[streaming]\nport = 70000\naddress = 'x'\n"))
	f.Add([]byte("gc_interval = '-1s'\n[images]\npull_progress_timeout = 'soon'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if err := Decode(data, &cfg); err != nil {
			return
		}
		_ = cfg.Validate()
	})
}
