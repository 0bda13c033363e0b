package monitor

import (
	"reflect"
	"testing"

	"example.org/ctr/internal/jsonwarm"
)

// TestFillReachesNestedTypes: the warm-up config has a value in the
// pointers, slices and maps deep in a Config, so that decoding it visits
// their types; and it survives a JSON round trip (jsonwarm.Warm's).
func TestFillReachesNestedTypes(t *testing.T) {
	var c Config
	jsonwarm.Fill(reflect.ValueOf(&c).Elem())
	if c.Spec == nil || len(c.Spec.Mounts) != 1 || len(c.Spec.Namespaces) != 1 || c.Spec.Resources == nil {
		t.Fatalf("spec not filled: %+v", c.Spec)
	}
	if c.Spec.Process.ConsoleSize == nil || len(c.Spec.Process.Rlimits) != 1 || c.Spec.Process.Seccomp == nil {
		t.Errorf("process not filled: %+v", c.Spec.Process)
	}
	if len(c.LogInfo.Config) != 1 {
		t.Errorf("log options not filled: %v", c.LogInfo.Config)
	}
	jsonwarm.Warm(new(Config)) // must not panic
}
