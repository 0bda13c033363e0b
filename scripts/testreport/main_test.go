package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	events := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:1: quiet\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:2: loud failure\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: TIER NOT RUN: no nspawn\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestD","Output":"    d_test.go:4: TIER NOT SELECTED: e2e\n"}
{"Action":"skip","Package":"p","Test":"TestD"}
{"Action":"output","Package":"p","Output":"PASS\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}
{"Action":"fail","Package":"p"}
vet: something odd
`
	var out strings.Builder
	c, ok := report(strings.NewReader(events), &out)
	if ok {
		t.Error("ok = true for a run with a failed test")
	}
	if c != (counts{passed: 1, failed: 1, skipped: 2}) {
		t.Errorf("counts = %+v", c)
	}
	got := out.String()
	for _, want := range []string{"loud failure", "TIER NOT RUN: no nspawn", "FAIL\tp\t0.1s", "vet: something odd"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"quiet", "TIER NOT SELECTED", "PASS\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("report has %q:\n%s", unwanted, got)
		}
	}
}

func TestReportUnfinishedTestFails(t *testing.T) {
	events := `{"Action":"run","Package":"p","Test":"TestHang"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out\n"}
`
	var out strings.Builder
	if _, ok := report(strings.NewReader(events), &out); ok {
		t.Error("ok = true for a test that never finished")
	}
	if !strings.Contains(out.String(), "panic: test timed out") {
		t.Errorf("report lacks the unfinished test's output:\n%s", out.String())
	}
}
