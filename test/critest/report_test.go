package critest

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// The parts of ginkgo's JSON report (-ginkgo.json-report: a list of types.Report)
// this package reads.
type suiteReport struct {
	SpecReports []specReport
}

type specReport struct {
	ContainerHierarchyTexts []string
	LeafNodeText            string
	LeafNodeType            string
	State                   string
	Failure                 struct {
		Message  string
		Location location
	}
}

type location struct {
	FileName   string
	LineNumber int
}

func (l location) String() string {
	if l.FileName == "" {
		return "?"
	}
	// Module cache paths: keep what follows the module.
	name := l.FileName
	if i := strings.Index(name, "cri-tools@"); i >= 0 {
		name = name[i:]
	}
	return fmt.Sprintf("%s:%d", name, l.LineNumber)
}

// Name is the spec's full text, as ginkgo's focus and skip match it and as
// expectedFailures keys it.
func (s specReport) Name() string {
	return strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " ")
}

// readReport returns the report's specs (It nodes) and the failures of suite-level
// nodes (BeforeSuite, AfterSuite, ...), which mean critest itself could not run.
func readReport(path string) ([]specReport, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var suites []suiteReport
	if err := json.Unmarshal(b, &suites); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	var specs []specReport
	var suiteFailures []string
	for _, su := range suites {
		for _, s := range su.SpecReports {
			if s.LeafNodeType == "It" {
				specs = append(specs, s)
				continue
			}
			if s.State != "passed" && s.State != "skipped" {
				suiteFailures = append(suiteFailures, fmt.Sprintf("%s %s: %s at %s", s.LeafNodeType, s.State, firstLine(s.Failure.Message), s.Failure.Location))
			}
		}
	}
	return specs, suiteFailures, nil
}

type summary struct {
	passed, failed, skipped []specReport
}

func summarize(specs []specReport) summary {
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name() < specs[j].Name() })
	var s summary
	for _, sp := range specs {
		switch sp.State {
		case "passed":
			s.passed = append(s.passed, sp)
		case "skipped", "pending":
			s.skipped = append(s.skipped, sp)
		default: // failed, panicked, interrupted, aborted, timedout
			s.failed = append(s.failed, sp)
		}
	}
	return s
}

// expectedButPassed lists the expected failures that ran and passed.
func (s summary) expectedButPassed(expected map[string]string) []string {
	var out []string
	for _, sp := range s.passed {
		if _, ok := expected[sp.Name()]; ok {
			out = append(out, sp.Name())
		}
	}
	return out
}
