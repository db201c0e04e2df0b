package checks

// dueHeap is the scheduler's min-heap of probes by due time. It is
// container/heap's algorithm written out for probes: with ten thousand
// of them, every run's pop and push walk about fourteen levels, and the
// interface calls and time.Time comparisons container/heap would make on
// each were a measurable share of the engine's CPU. Each entry carries
// its probe's due time, so comparisons read the array alone instead of
// two probes scattered over the heap.
type dueHeap []dueEntry

type dueEntry struct {
	due int64 // p.due, copied while p is in the heap
	p   *probe
}

func (h dueHeap) less(i, j int) bool { return h[i].due < h[j].due }

func (h dueHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].p.index, h[j].p.index = i, j
}

// next is the due time of the probe due first; h must not be empty.
func (h dueHeap) next() int64 { return h[0].due }

func (h *dueHeap) push(p *probe) {
	p.index = len(*h)
	*h = append(*h, dueEntry{p.due, p})
	h.up(p.index)
}

// pop removes and returns the probe due first; h must not be empty.
func (h *dueHeap) pop() *probe {
	n := len(*h) - 1
	h.swap(0, n)
	h.down(0, n)
	return h.cut(n)
}

// remove takes out the probe at index i.
func (h *dueHeap) remove(i int) {
	n := len(*h) - 1
	if i != n {
		h.swap(i, n)
		if !h.down(i, n) {
			h.up(i)
		}
	}
	h.cut(n)
}

func (h *dueHeap) cut(n int) *probe {
	old := *h
	p := old[n].p
	old[n] = dueEntry{}
	p.index = -1
	*h = old[:n]
	return p
}

func (h dueHeap) up(j int) {
	for {
		i := (j - 1) / 2 // parent
		if i == j || !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

// down sifts the element at i0 down within h[:n] and reports whether it
// moved.
func (h dueHeap) down(i0, n int) bool {
	i := i0
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 { // j1 < 0 after int overflow
			break
		}
		j := j1 // left child
		if j2 := j1 + 1; j2 < n && h.less(j2, j1) {
			j = j2 // right child
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
