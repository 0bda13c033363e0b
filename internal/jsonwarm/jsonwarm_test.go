package jsonwarm

import (
	"reflect"
	"testing"
)

type inner struct {
	Names []string
	Bytes []byte
	Next  *inner
}

type outer struct {
	P    *inner
	L    []inner
	M    map[string]*inner
	hide *inner
}

// TestFill: every pointer, slice and map gets one element, byte slices and
// unexported fields stay as they were, and a type that holds itself ends.
func TestFill(t *testing.T) {
	var o outer
	Fill(reflect.ValueOf(&o).Elem())
	if o.P == nil || len(o.P.Names) != 1 || o.P.Next == nil {
		t.Fatalf("pointer not filled: %+v", o.P)
	}
	if len(o.L) != 1 || len(o.L[0].Names) != 1 {
		t.Errorf("slice not filled: %+v", o.L)
	}
	if len(o.M) != 1 || o.M[""] == nil {
		t.Errorf("map not filled: %+v", o.M)
	}
	if o.P.Bytes != nil || o.hide != nil {
		t.Errorf("bytes or an unexported field filled: %v %v", o.P.Bytes, o.hide)
	}
	depth := 0
	for n := o.P; n != nil; n = n.Next {
		depth++
	}
	if depth == 0 || depth > maxDepth {
		t.Errorf("self-referencing type filled %d deep", depth)
	}
}

// TestWarmLeavesValue: Warm works on a fresh value of the type, not the
// one given; a non-pointer is ignored.
func TestWarmLeavesValue(t *testing.T) {
	o := &outer{}
	Warm(o)
	if o.P != nil || o.L != nil || o.M != nil {
		t.Errorf("Warm changed its argument: %+v", o)
	}
	Warm(outer{})
	Warm(nil)
}
