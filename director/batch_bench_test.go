package director

import (
	"math/rand/v2"
	"testing"

	"github.com/directorlb/director/ipvsdump"
)

// nullBatch accepts every change at once: what is left of a cold apply
// through it is the director's own user-space work.
type nullBatch struct{ *fakeKernel }

func (nullBatch) Batch(chs []ipvsdump.Change) []error { return make([]error, len(chs)) }

// BenchmarkColdApplyUserSpace100k is a cold apply of the reference
// table minus the kernel: the plan, its bookkeeping and its log.
func BenchmarkColdApplyUserSpace100k(b *testing.B) {
	desired := DesiredTable(benchConfig(), ConfiguredWeights{})
	b.ReportAllocs()
	for b.Loop() {
		k := nullBatch{newFakeKernel()}
		r := NewReconciler(k, quietLog(), "")
		r.SetWorkers(nullBatch{newFakeKernel()})
		if res := r.Apply(desired); res.Applied != 110000 {
			b.Fatalf("%+v", res)
		}
	}
}

// BenchmarkSortOps110k sorts a cold start's plan, shuffled as a map's
// order leaves it.
func BenchmarkSortOps110k(b *testing.B) {
	ops := Diff(DesiredTable(benchConfig(), ConfiguredWeights{}), Table{}, func(SvcKey) bool { return true }).Ops
	rng := rand.New(rand.NewPCG(1, 2))
	work := make([]Op, len(ops))
	for b.Loop() {
		b.StopTimer()
		copy(work, ops)
		rng.Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })
		b.StartTimer()
		sortOps(work)
	}
}
