package checks

// machine is the rise/fall state of one probe: Rise consecutive successes
// make an unhealthy target healthy, Fall consecutive failures make a
// healthy one unhealthy. Counting is consecutive: any opposite result
// resets the count.
type machine struct {
	rise, fall int
	healthy    bool
	successes  int // consecutive, while unhealthy
	failures   int // consecutive, while healthy
}

func newMachine(rise, fall int, healthy bool) machine {
	return machine{rise: max(rise, 1), fall: max(fall, 1), healthy: healthy}
}

// observe records one result and reports whether health flipped.
func (m *machine) observe(ok bool) (changed bool) {
	switch {
	case m.healthy && ok:
		m.failures = 0
	case m.healthy:
		m.failures++
		if m.failures >= m.fall {
			m.healthy, m.failures = false, 0
			return true
		}
	case ok:
		m.successes++
		if m.successes >= m.rise {
			m.healthy, m.successes = true, 0
			return true
		}
	default:
		m.successes = 0
	}
	return false
}

// transitional reports a state on its way to flipping, when a faster
// interval confirms (or refutes) the change sooner.
func (m *machine) transitional() bool {
	if m.healthy {
		return m.failures > 0
	}
	return m.successes > 0
}
