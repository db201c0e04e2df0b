package director

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"golang.org/x/sys/unix"
)

// Reconciler applies desired tables to the kernel. It keeps a view of
// what the kernel holds, updated by every change it makes, so a change of
// one weight costs one netlink request and no dump of the whole table;
// Refresh replaces the view with a fresh dump and reports any drift.
//
// A Reconciler is not safe for concurrent use: the Director's loop owns it.
type Reconciler struct {
	k     Kernel
	extra []Kernel // more sockets for large plans (SetWorkers)
	log   *slog.Logger
	view  Table
	owned map[SvcKey]bool
	// statePath remembers owned services across restarts, so a service
	// removed from the config while directord was down is still removed.
	statePath string
	foreign   []SvcKey
	Counters  *Counters

	rotation []SvcKey // RefreshRotating's order of reading destinations
	cursor   int

	// sysctl turns expire_nodest_conn off around moves (order.go); nil:
	// not touched.
	sysctl Sysctl
}

// Counters are totals since start, for status and metrics. They are
// atomic: the metrics endpoint reads them while the loop runs.
type Counters struct {
	Applied [len(opNames)]atomic.Uint64 // by OpKind
	Errors  atomic.Uint64
	Drift   atomic.Uint64
}

// Result is what one Apply did.
type Result struct {
	Applied int
	Failed  int
	Errors  []error
	// failed are the services with a change that did not happen.
	failed map[SvcKey]bool
}

// NewReconciler starts with an empty view; call Refresh before Apply.
func NewReconciler(k Kernel, log *slog.Logger, statePath string) *Reconciler {
	r := &Reconciler{k: k, log: log, view: Table{}, owned: map[SvcKey]bool{}, statePath: statePath,
		Counters: &Counters{}}
	r.loadOwned()
	return r
}

// SetWorkers gives the reconciler more handles on the same kernel, each
// with its own netlink socket, for applying large plans in parallel.
func (r *Reconciler) SetWorkers(extra ...Kernel) { r.extra = extra }

// View is the reconciler's picture of the kernel table. Callers must not
// modify it.
func (r *Reconciler) View() Table { return r.view }

// Owned reports whether the director manages a service.
func (r *Reconciler) Owned(k SvcKey) bool { return r.owned[k] }

// Refresh dumps the kernel's table and makes it the view. It returns one
// line per difference found in owned services between the old view and
// the kernel: drift, made by someone else behind the director's back.
//
// Drift is confirmed by a second dump before it is reported: the kernel
// resumes a multi-part service dump by an index that counts every
// namespace's services, so changes in another namespace during the dump
// can make it skip or repeat entries. Only what both dumps show is drift.
func (r *Reconciler) Refresh() ([]string, error) {
	fresh, err := ReadTable(r.k, r.extra...)
	if err != nil {
		return nil, err
	}
	drift := r.drift(fresh)
	if len(drift) > 0 {
		again, err := ReadTable(r.k, r.extra...)
		if err == nil {
			fresh, drift = again, intersect(drift, r.drift(again))
		}
	}
	r.Counters.Drift.Add(uint64(len(drift)))
	r.carryLast(fresh)
	r.view = fresh
	return drift, nil
}

// carryLast keeps what the view knew of last weights (order.go), and
// the config's names: the kernel knows none, and a plan that removes or
// edits a service names it by them.
func (r *Reconciler) carryLast(fresh Table) {
	for key, e := range fresh {
		if old, ok := r.view[key]; ok && old != e {
			carryLast(old, e)
			if e.Name == "" {
				e.Name = old.Name
			}
		}
	}
}

// Rotation bounds the cost of the timer's reconcile on large tables: every
// service is read each time, but the destinations of only a batch of
// them, so that each destination is read at least every rotationTicks
// reconciles. Tables of up to minBatch services are read whole each time.
const (
	rotationTicks = 12
	minBatch      = 256
)

// RefreshRotating is the timer's Refresh. It reads every service, which
// catches a flushed, deleted or edited service at once, and the
// destinations of the services it did not know plus the next batch in
// rotation. Unread entries keep their view (and what they were found
// equal to), so the following Apply compares only what was read.
func (r *Reconciler) RefreshRotating() ([]string, error) {
	svcs, err := readServices(r.k)
	if err != nil {
		return nil, err
	}
	if len(svcs) <= minBatch {
		return r.Refresh()
	}
	fresh := make(Table, len(svcs))
	var read []ipvs.Service
	for _, s := range svcs {
		ns := normalService(s)
		key := KeyOf(ns)
		old, ok := r.view[key]
		switch {
		case !ok:
			read = append(read, s)
		case !sameService(old.Service, ns):
			// Edited behind our back: a new entry, compared in full.
			fresh[key] = &Entry{Name: old.Name, Service: ns, Dests: old.Dests}
		default:
			fresh[key] = old
		}
	}
	batch := max(minBatch, (len(svcs)+rotationTicks-1)/rotationTicks)
	for _, key := range r.nextBatch(fresh, batch) {
		read = append(read, fresh[key].Service)
	}
	entries, err := readDests(append([]Kernel{r.k}, r.extra...), read)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		key := KeyOf(e.Service)
		if old, ok := r.view[key]; ok {
			e.Name = old.Name
		}
		fresh[key] = e
	}
	drift := r.drift(fresh)
	if len(drift) > 0 {
		// Confirm with a whole second dump, as Refresh does.
		again, err := ReadTable(r.k, r.extra...)
		if err == nil {
			fresh, drift = again, intersect(drift, r.drift(again))
		}
	}
	r.Counters.Drift.Add(uint64(len(drift)))
	r.carryLast(fresh)
	r.view = fresh
	return drift, nil
}

// nextBatch returns up to n keys of t, continuing where the last batch
// stopped, in a stable order.
func (r *Reconciler) nextBatch(t Table, n int) []SvcKey {
	var out []SvcKey
	for len(out) < n && len(out) < len(t) {
		if r.cursor >= len(r.rotation) {
			r.rotation = r.rotation[:0]
			for k := range t {
				r.rotation = append(r.rotation, k)
			}
			slices.SortFunc(r.rotation, compareSvcKey)
			r.cursor = 0
		}
		for ; r.cursor < len(r.rotation) && len(out) < n; r.cursor++ {
			if _, ok := t[r.rotation[r.cursor]]; ok {
				out = append(out, r.rotation[r.cursor])
			}
		}
		if r.cursor < len(r.rotation) {
			break
		}
	}
	return out
}

// drift lists the differences between the view and a dump, for owned
// services, sorted.
func (r *Reconciler) drift(fresh Table) []string {
	var drift []string
	for key, old := range r.view {
		if !r.owned[key] {
			continue
		}
		now, ok := fresh[key]
		if !ok {
			drift = append(drift, fmt.Sprintf("service %s disappeared", key))
			continue
		}
		if now == old {
			continue // not read again this time
		}
		if !sameService(old.Service, now.Service) {
			drift = append(drift, driftLine(Op{Kind: UpdateService, Service: old.Service, OldService: now.Service}))
		}
		for _, op := range diffDests(old, now) {
			drift = append(drift, driftLine(op))
		}
		if old.List != nil && now.List != nil && !sameRelativeOrder(old.List, now.List) {
			drift = append(drift, fmt.Sprintf("order of the destinations of %s changed (now %s)", key, listString(now.List)))
		}
	}
	slices.Sort(drift)
	return drift
}

// intersect keeps the lines of sorted a that are also in sorted b.
func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); found {
			out = append(out, x)
		}
	}
	return out
}

// driftLine describes a difference found by Refresh, where "want" is what
// the director had set and the op's other side is what the kernel holds.
func driftLine(op Op) string {
	key := KeyOf(op.Service)
	switch op.Kind {
	case UpdateService:
		return fmt.Sprintf("service %s changed (scheduler %q flags %v timeout %d)", key, op.OldService.Scheduler, op.OldService.Flags, op.OldService.Timeout)
	case CreateDest:
		return fmt.Sprintf("destination %s of %s disappeared", DestKeyOf(op.Dest), key)
	case UpdateDest:
		return fmt.Sprintf("destination %s of %s changed (weight %d, was %d)", DestKeyOf(op.Dest), key, op.OldDest.Weight, op.Dest.Weight)
	case RemoveDest:
		return fmt.Sprintf("destination %s appeared in %s", DestKeyOf(op.Dest), key)
	}
	return op.String()
}

// Apply makes the kernel hold desired, for every service in it and every
// service the director owns. Services it does not own are left alone.
// Kernel errors are logged with the object concerned and counted; the
// rest of the table still converges.
func (r *Reconciler) Apply(desired Table) Result {
	// Diff asks about ownership only for services absent from desired,
	// so the desired ones can be claimed after it. A service Diff passed
	// by as already matching is owned: only Apply and ApplyEntry, on
	// owned services, mark a match, and RemoveOwned unmarks them all.
	plan := Diff(desired, r.view, r.Owned)
	changed := false
	for _, key := range plan.compared {
		if !r.owned[key] {
			r.owned[key], changed = true, true
		}
	}
	r.reportForeign(plan.Foreign)
	r.warnOrder(desired, plan.compared)
	res := r.executeMoves(plan.Ops)
	for _, key := range plan.compared {
		r.markConverged(key, desired[key], res)
	}
	// Every desired service is owned by now: as many owned as desired
	// are the same set, and nothing is left to forget.
	if len(r.owned) > len(desired) {
		for key := range r.owned {
			if _, inDesired := desired[key]; !inDesired {
				if _, inKernel := r.view[key]; !inKernel {
					delete(r.owned, key)
					changed = true
				}
			}
		}
	}
	if changed {
		r.saveOwned()
	}
	return res
}

// ApplyEntry converges one service, for changes that touch only it (a
// weight). The service must be one the director owns.
func (r *Reconciler) ApplyEntry(want *Entry) Result {
	key := KeyOf(want.Service)
	have, ok := r.view[key]
	if !ok {
		return r.Apply(Table{key: want})
	}
	r.warnOrder(Table{key: want}, []SvcKey{key})
	res := r.executeMoves(DiffEntry(want, have))
	r.markConverged(key, want, res)
	return res
}

// markConverged records that the view's entry for key now equals want,
// unless a change to it failed.
func (r *Reconciler) markConverged(key SvcKey, want *Entry, res Result) {
	if e, ok := r.view[key]; ok && !res.failed[key] {
		e.matches = want
	}
}

// RemoveOwned deletes every owned service from the kernel
// (ipvs.cleanup_on_exit).
func (r *Reconciler) RemoveOwned() Result {
	var ops []Op
	for key, e := range r.view {
		if r.owned[key] {
			ops = append(ops, Op{Kind: RemoveService, Service: e.Service})
		}
	}
	sortOps(ops)
	res := r.execute(ops)
	for _, e := range r.view {
		e.matches = nil // what is left is owned no more
	}
	r.owned = map[SvcKey]bool{}
	r.saveOwned()
	return res
}

func (r *Reconciler) reportForeign(foreign []SvcKey) {
	if slices.Equal(foreign, r.foreign) {
		return
	}
	r.foreign = foreign
	for _, k := range foreign {
		r.log.Info("leaving alone a service the config does not name", "service", k.String())
	}
}

// parallelMin is the size from which a plan is spread over the extra
// kernel handles: below it, goroutines cost more than they save.
const parallelMin = 256

// execute applies ops, keeping the view in step with what succeeded.
// Large plans are sharded by service over several netlink sockets: the
// kernel serialises IPVS changes, but each request's user-space half
// (encoding, decoding, garbage) overlaps with another's kernel half.
// Within a service the plan's order is kept.
func (r *Reconciler) execute(ops []Op) Result {
	errs := make([]error, len(ops))
	skipped := make([]bool, len(ops))
	kernels := append([]Kernel{r.k}, r.extra...)
	if len(ops) < parallelMin {
		kernels = kernels[:1]
	}
	shards := make([][]int, len(kernels))
	for i, op := range ops {
		w := shardOf(KeyOf(op.Service), len(kernels))
		shards[w] = append(shards[w], i)
	}
	var wg sync.WaitGroup
	for w, idxs := range shards {
		wg.Add(1)
		go func(k Kernel, idxs []int) {
			defer wg.Done()
			executeShard(k, ops, idxs, errs, skipped) // batch.go
		}(kernels[w], idxs)
	}
	wg.Wait()

	res := Result{failed: map[SvcKey]bool{}}
	verbose := len(ops) <= 50
	// Building each op's attributes is a good part of a cold apply's
	// user-space work: only for a log that keeps them.
	debug := !verbose && r.log.Enabled(context.Background(), slog.LevelDebug)
	for i, op := range ops {
		if skipped[i] {
			res.failed[KeyOf(op.Service)] = true
			continue
		}
		if err := errs[i]; err != nil {
			res.failed[KeyOf(op.Service)] = true
			res.Failed++
			r.Counters.Errors.Add(1)
			res.Errors = append(res.Errors, fmt.Errorf("%s: %w", op, err))
			r.log.Error("kernel refused a change", "op", op.Kind.String(), "service", op.Name, "key", KeyOf(op.Service).String(), "destination", destLabel(op), "err", err)
			continue
		}
		r.record(op)
		res.Applied++
		r.Counters.Applied[op.Kind].Add(1)
		if verbose {
			r.log.Info("ipvs changed", opAttrs(op)...)
		} else if debug {
			r.log.Debug("ipvs changed", opAttrs(op)...)
		}
	}
	if !verbose && len(ops) > 0 {
		r.log.Info("ipvs changed", "changes", res.Applied, "failed", res.Failed)
	}
	return res
}

// shardOf spreads services evenly and stably over n workers.
func shardOf(k SvcKey, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	b := k.Addr.As16()
	h.Write(b[:])
	var x [9]byte
	binary.LittleEndian.PutUint32(x[0:], k.FWMark)
	binary.LittleEndian.PutUint16(x[4:], k.Port)
	binary.LittleEndian.PutUint16(x[6:], uint16(k.Protocol))
	x[8] = byte(k.Family)
	h.Write(x[:])
	return int(h.Sum32() % uint32(n))
}

func destLabel(op Op) string {
	switch op.Kind {
	case CreateDest, UpdateDest, RemoveDest:
		return DestKeyOf(op.Dest).String()
	}
	return ""
}

func opAttrs(op Op) []any {
	attrs := []any{"op", op.Kind.String(), "service", op.Name, "key", KeyOf(op.Service).String()}
	switch op.Kind {
	case CreateDest, UpdateDest:
		attrs = append(attrs, "destination", DestKeyOf(op.Dest).String(), "weight", op.Dest.Weight)
	case RemoveDest:
		attrs = append(attrs, "destination", DestKeyOf(op.Dest).String())
	case UpdateService, CreateService:
		attrs = append(attrs, "scheduler", op.Service.Scheduler)
	}
	return attrs
}

// apply performs one op on k. A stale view (someone else created or
// removed the object since the last dump) is not an error: a create that
// finds the object becomes an update, an update that does not becomes a
// create, and removing what is gone already succeeds.
func apply(k Kernel, op Op) error {
	switch op.Kind {
	case CreateService:
		err := k.CreateService(op.Service)
		if errors.Is(err, unix.EEXIST) {
			err = k.UpdateService(op.Service)
		}
		return err
	case UpdateService:
		err := k.UpdateService(op.Service)
		if isNotExist(err) {
			err = k.CreateService(op.Service)
		}
		return err
	case RemoveService:
		if err := k.RemoveService(op.Service); err != nil && !isNotExist(err) {
			return err
		}
	case CreateDest:
		err := k.CreateDestination(op.Service, op.Dest)
		if errors.Is(err, unix.EEXIST) {
			err = k.UpdateDestination(op.Service, op.Dest)
		}
		return err
	case UpdateDest:
		err := k.UpdateDestination(op.Service, op.Dest)
		if isNotExist(err) {
			err = k.CreateDestination(op.Service, op.Dest)
		}
		return err
	case RemoveDest:
		if err := k.RemoveDestination(op.Service, op.Dest); err != nil && !isNotExist(err) {
			return err
		}
	}
	return nil
}

// record updates the view after op succeeded.
func (r *Reconciler) record(op Op) {
	key := KeyOf(op.Service)
	e, ok := r.view[key]
	if !ok {
		if op.Kind == CreateService || op.Kind == UpdateService {
			r.view[key] = &Entry{Name: op.Name, Service: normalService(op.Service)}
		}
		return
	}
	e.matches = nil // until markConverged finds the whole service done
	switch op.Kind {
	case CreateService, UpdateService:
		e.Service = normalService(op.Service)
		if e.Name == "" {
			e.Name = op.Name
		}
	case RemoveService:
		delete(r.view, key)
	case CreateDest, UpdateDest:
		recordList(e, op)
		e.Dests.put(op.Dest)
	case RemoveDest:
		recordList(e, op)
		e.Dests.remove(DestKeyOf(op.Dest))
	}
}

// isNotExist matches the kernel's "no such service/destination": IPVS
// answers ESRCH for a missing service and ENOENT for a missing
// destination.
func isNotExist(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// SetTimeouts applies ipvs.timeouts, leaving zero fields as they are.
func (r *Reconciler) SetTimeouts(t *config.Timeouts) error {
	if t == nil {
		return nil
	}
	cur, err := r.k.Config()
	if err != nil {
		return fmt.Errorf("read IPVS timeouts: %w", err)
	}
	want := cur
	for _, f := range []struct {
		d   float64
		dst *uint32
	}{{t.TCP.Seconds(), &want.TCPTimeout}, {t.TCPFin.Seconds(), &want.TCPFinTimeout}, {t.UDP.Seconds(), &want.UDPTimeout}} {
		if f.d > 0 {
			*f.dst = uint32(f.d)
		}
	}
	if want == cur {
		return nil
	}
	if err := r.k.SetConfig(want); err != nil {
		return fmt.Errorf("set IPVS timeouts: %w", err)
	}
	r.log.Info("ipvs timeouts set", "tcp", want.TCPTimeout, "tcp_fin", want.TCPFinTimeout, "udp", want.UDPTimeout)
	return nil
}
