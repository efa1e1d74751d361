//go:build failpoints

package failpoint

import "testing"

func TestParseAndHit(t *testing.T) {
	points = parse("a=error, b=sleep:1ms,bad, =x")
	defer func() { points = map[string]string{} }()
	if len(points) != 2 {
		t.Errorf("points = %v", points)
	}
	if Hit("a") == nil {
		t.Error("error action did not fail")
	}
	if Hit("b") != nil || Hit("none") != nil {
		t.Error("sleep or unknown point failed")
	}
}
