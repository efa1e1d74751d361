package cri

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSendChunked(t *testing.T) {
	item := func(n int) *runtimeapi.Image { return &runtimeapi.Image{Id: strings.Repeat("x", n)} }
	items := []*runtimeapi.Image{item(100), item(100), item(100), item(1000), item(10)}
	var chunks [][]*runtimeapi.Image
	if err := sendChunked(items, 250, func(c []*runtimeapi.Image) error { chunks = append(chunks, c); return nil }); err != nil {
		t.Fatal(err)
	}
	// 100+100 fit in 250; the third starts a chunk; 1000 goes alone; 10 after it.
	want := []int{2, 1, 1, 1}
	if len(chunks) != len(want) {
		t.Fatalf("%d chunks, want %d", len(chunks), len(want))
	}
	total := 0
	for i, c := range chunks {
		if len(c) != want[i] {
			t.Errorf("chunk %d has %d items, want %d", i, len(c), want[i])
		}
		total += len(c)
		if size := proto.Size(&runtimeapi.StreamImagesResponse{Images: c}); len(c) > 1 && size > 250 {
			t.Errorf("chunk %d encodes to %d bytes", i, size)
		}
	}
	if total != len(items) {
		t.Errorf("%d items sent, want %d", total, len(items))
	}
	// Nothing to send: one empty message.
	n := 0
	_ = sendChunked([]*runtimeapi.Image{}, 250, func(c []*runtimeapi.Image) error { n++; return nil })
	if n != 1 {
		t.Errorf("%d messages for no items, want 1", n)
	}
}
