package wgputest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestChildArgs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		dawnRun string
		want    []string
		ok      bool
	}{
		{"pattern added", []string{"-test.v=true"}, "TestA|TestB", []string{"-test.v=true", "-test.run=TestA|TestB"}, true},
		{"all tests", []string{"-test.timeout=10m0s"}, "", []string{"-test.timeout=10m0s"}, true},
		{"the caller's pattern wins", []string{"-test.run=TestX"}, "TestA", []string{"-test.run=TestX"}, true},
		{"benchmarks: no child", []string{"-test.bench=.", "-test.run=^$"}, "", nil, false},
		{"empty bench flag", []string{"-test.bench="}, "TestA", []string{"-test.bench=", "-test.run=TestA"}, true},
		{"listing: no child", []string{"-test.list=."}, "", nil, false},
	} {
		got, ok := childArgs(tt.args, tt.dawnRun)
		assert.Equal(t, tt.ok, ok, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
}
