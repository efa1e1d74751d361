package undo

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunReversesAndContinues(t *testing.T) {
	var s Stack
	var order []string
	for _, name := range []string{"a", "b", "c"} {
		s.Push(name, func(ctx context.Context) error {
			order = append(order, name)
			if _, ok := ctx.Deadline(); !ok {
				t.Error("undo context has no deadline")
			}
			if name == "b" {
				return errors.New("boom")
			}
			return nil
		})
	}
	err := s.Run("id", "x")
	if strings.Join(order, "") != "cba" {
		t.Errorf("order %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "b: boom") {
		t.Errorf("err = %v", err)
	}
	if err := s.Run(); err != nil {
		t.Errorf("second run: %v", err)
	}
}
