package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestChart(t *testing.T) {
	rows := []row{
		{Op: "RunPodSandbox", Ms: map[string]map[string]float64{"keelson": {"p50": 130}, "containerd": {"p50": 300}}},
		{Op: "ImageStatus", Ms: map[string]map[string]float64{"keelson": {"p50": 0.5}, "containerd": {"p50": 0.05}}},
	}
	out := filepath.Join(t.TempDir(), "bench.png")
	if err := chart(out, rows, []*runtime{{name: "keelson"}, {name: "containerd"}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
}
