package checks

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDueHeap drives the heap with random pushes, removals and pops and
// checks, after every step, the heap order and each probe's index, and
// that pops come out in due order.
func TestDueHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h dueHeap
	var in []*probe // what the heap should hold
	check := func(step int) {
		t.Helper()
		if len(h) != len(in) {
			t.Fatalf("step %d: heap holds %d, want %d", step, len(h), len(in))
		}
		for i, en := range h {
			if en.p.index != i || en.due != en.p.due {
				t.Fatalf("step %d: entry %d holds index %d, due %d for a probe due %d", step, i, en.p.index, en.due, en.p.due)
			}
			if i > 0 && h.less(i, (i-1)/2) {
				t.Fatalf("step %d: element %d is due before its parent", step, i)
			}
		}
	}
	for step := range 5000 {
		switch op := r.IntN(10); {
		case op < 5 || len(in) == 0:
			p := &probe{due: r.Int64N(1000), index: -1}
			h.push(p)
			in = append(in, p)
		case op < 7:
			p := in[r.IntN(len(in))]
			h.remove(p.index)
			if p.index != -1 {
				t.Fatalf("step %d: removed probe keeps index %d", step, p.index)
			}
			in = slices.DeleteFunc(in, func(q *probe) bool { return q == p })
		default:
			min := slices.MinFunc(in, func(a, b *probe) int { return int(a.due - b.due) })
			p := h.pop()
			if p.due != min.due {
				t.Fatalf("step %d: popped due %d, want %d", step, p.due, min.due)
			}
			in = slices.DeleteFunc(in, func(q *probe) bool { return q == p })
		}
		check(step)
	}
}
