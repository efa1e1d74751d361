// Package ginkgoreport reads the JSON report of a ginkgo suite (--json-report: a list
// of ginkgo's types.Report) for the tests that run upstream suites against keelson:
// critest (test/critest) and Kubernetes' conformance specs (test/cluster).
package ginkgoreport

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type suite struct {
	SpecReports []Spec
}

// Spec is one node of the report: an It, or a suite-level node.
type Spec struct {
	ContainerHierarchyTexts []string
	LeafNodeText            string
	LeafNodeType            string
	State                   string
	NumAttempts             int
	Failure                 struct {
		Message  string
		Location Location
	}
}

// Location is where a failure happened.
type Location struct {
	FileName   string
	LineNumber int
}

func (l Location) String() string {
	if l.FileName == "" {
		return "?"
	}
	name := l.FileName // a module cache path: keep what follows pkg/mod/
	if _, rest, ok := strings.Cut(name, "/pkg/mod/"); ok {
		name = rest
	}
	return fmt.Sprintf("%s:%d", name, l.LineNumber)
}

// Name is the spec's full text, as ginkgo's focus and skip match it.
func (s Spec) Name() string {
	return strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " ")
}

// Filtered reports a spec the suite's filters left out (ginkgo lists it as skipped
// with no reason; a spec that skipped itself gives its reason).
func (s Spec) Filtered() bool { return s.State == "skipped" && s.Failure.Message == "" }

// Read returns the report's specs (It nodes) and the failures of suite-level nodes
// (BeforeSuite, AfterSuite, ...), which mean the suite itself could not run.
func Read(path string) ([]Spec, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var suites []suite
	if err := json.Unmarshal(b, &suites); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	var specs []Spec
	var suiteFailures []string
	for _, su := range suites {
		for _, s := range su.SpecReports {
			if s.LeafNodeType == "It" {
				specs = append(specs, s)
				continue
			}
			if s.State != "passed" && s.State != "skipped" {
				suiteFailures = append(suiteFailures, fmt.Sprintf("%s %s: %s at %s", s.LeafNodeType, s.State, FirstLine(s.Failure.Message), s.Failure.Location))
			}
		}
	}
	return specs, suiteFailures, nil
}

// Summary sorts specs by how they ended, each list by name.
type Summary struct {
	Passed, Failed, Skipped []Spec
}

// Summarize sorts specs into a Summary.
func Summarize(specs []Spec) Summary {
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name() < specs[j].Name() })
	var s Summary
	for _, sp := range specs {
		switch sp.State {
		case "passed":
			s.Passed = append(s.Passed, sp)
		case "skipped", "pending":
			s.Skipped = append(s.Skipped, sp)
		default: // failed, panicked, interrupted, aborted, timedout
			s.Failed = append(s.Failed, sp)
		}
	}
	return s
}

// ExpectedButPassed lists the expected failures (by name) that ran and passed.
func (s Summary) ExpectedButPassed(expected map[string]string) []string {
	var out []string
	for _, sp := range s.Passed {
		if _, ok := expected[sp.Name()]; ok {
			out = append(out, sp.Name())
		}
	}
	return out
}

// FirstLine is the first line of a failure message.
func FirstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
