package config

import (
	"fmt"
	"slices"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "90s" or "5m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a number with a unit, e.g. \"30s\", \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}

func sortStrings(s []string) { slices.Sort(s) }
