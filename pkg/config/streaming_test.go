package config

import (
	"strings"
	"testing"
	"time"
)

func TestStreamingConfig(t *testing.T) {
	c := Default()
	if err := Decode([]byte("[streaming]\naddress = \"::\"\nport = 10010\nidle_timeout = \"30m\"\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Streaming.Address != "::" || c.Streaming.Port != 10010 || c.Streaming.IdleTimeout.D() != 30*time.Minute ||
		c.Streaming.StreamCreationTimeout.D() != 30*time.Second {
		t.Errorf("decoded streaming = %+v", c.Streaming)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid streaming config refused: %v", err)
	}
	for _, tt := range []struct {
		name    string
		mutate  func(s *Streaming)
		wantErr string
	}{
		{"host name", func(s *Streaming) { s.Address = "localhost" }, "streaming.address must be an IP address"},
		{"empty address", func(s *Streaming) { s.Address = "" }, "streaming.address"},
		{"port range", func(s *Streaming) { s.Port = 70000 }, "streaming.port"},
		{"cert without key", func(s *Streaming) { s.TLSCertFile = "/c" }, "set together"},
		{"cert and key", func(s *Streaming) { s.TLSCertFile, s.TLSKeyFile = "/c", "/k" }, ""},
		{"zero idle timeout", func(s *Streaming) { s.IdleTimeout = 0 }, "streaming.idle_timeout"},
		{"negative creation timeout", func(s *Streaming) { s.StreamCreationTimeout = Duration(-time.Second) }, "stream_creation_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c.Streaming)
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
}
