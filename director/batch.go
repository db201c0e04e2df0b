package director

import (
	"errors"

	"github.com/directorlb/director/ipvsdump"
	"golang.org/x/sys/unix"
)

// BatchKernel is a Kernel that can make many changes in one exchange
// with the kernel, each change still answered on its own
// ((*ipvsdump.Client).Batch). A large plan goes through it: one netlink
// request and acknowledgement per change is most of the cost of a cold
// start.
type BatchKernel interface {
	Kernel
	// Batch makes each change in order, going on after a failure, and
	// returns each one's error as the one-change methods would.
	Batch([]ipvsdump.Change) []error
}

const (
	// batchMin is the shard size from which a BatchKernel is used:
	// below it, a batch saves nothing worth its set-up.
	batchMin = 8
	// batchChunk is how many ops go to one Batch call; between calls,
	// failures are followed up as apply would.
	batchChunk = 2048
)

// changeOf is the first request apply makes for op.
func changeOf(op Op) ipvsdump.Change {
	ch := ipvsdump.Change{Service: op.Service, Dest: op.Dest}
	switch op.Kind {
	case CreateService:
		ch.Cmd = ipvsdump.NewService
	case UpdateService:
		ch.Cmd = ipvsdump.SetService
	case RemoveService:
		ch.Cmd = ipvsdump.DelService
	case CreateDest:
		ch.Cmd = ipvsdump.NewDest
	case UpdateDest:
		ch.Cmd = ipvsdump.SetDest
	case RemoveDest:
		ch.Cmd = ipvsdump.DelDest
	}
	return ch
}

// destWrite is an op skipped once its service failed to be created.
func destWrite(k OpKind) bool { return k == CreateDest || k == UpdateDest }

// staleView reports whether err, the answer to op's first request, is
// one apply follows up with another request (the view was stale).
func staleView(k OpKind, err error) bool {
	switch k {
	case CreateService, CreateDest:
		return errors.Is(err, unix.EEXIST)
	case UpdateService, UpdateDest:
		return isNotExist(err)
	}
	return false
}

// executeShard is one worker's part of execute: ops[i] for each i of
// idxs, in order within each service, errs and skipped filled as the
// one-by-one loop fills them.
//
// Through a BatchKernel, each op's first request goes out in batches.
// Services whose destination order matters (mh, sh, Ordered; order.go)
// still go one by one, since a batch cannot stop at a failure. When a
// batched op finds the view stale, apply's follow-up is made at once,
// after the rest of its batch has run, and the service's later ops are
// made again one by one with apply, in order: every op is idempotent
// through apply, so the service ends as the one-by-one loop leaves it.
// One difference is left: a destination write that ran in a batch before
// its service's creation turned out to have failed (it exists already,
// its update is refused) is reported made, as it is, where the one-by-one
// loop would have skipped it.
func executeShard(k Kernel, ops []Op, idxs []int, errs []error, skipped []bool) {
	bk, ok := k.(BatchKernel)
	if !ok || len(idxs) < batchMin {
		executeOneByOne(k, ops, idxs, errs, skipped)
		return
	}
	ordered := map[SvcKey]bool{}
	for _, i := range idxs {
		if op := ops[i]; op.move || op.seq != 0 || listOrdered(op.Service.Scheduler) || listOrdered(op.OldService.Scheduler) {
			ordered[KeyOf(op.Service)] = true
		}
	}
	var single, batched []int
	for _, i := range idxs {
		if ordered[KeyOf(ops[i].Service)] {
			single = append(single, i)
		} else {
			batched = append(batched, i)
		}
	}
	executeOneByOne(k, ops, single, errs, skipped)

	failedSvc := map[SvcKey]bool{}
	slow := map[SvcKey]bool{} // found stale: one by one from then on
	inBatch := map[int]bool{}
	changes := make([]ipvsdump.Change, 0, min(batchChunk, len(batched)))
	sent := make([]int, 0, cap(changes))
	for start := 0; start < len(batched); start += batchChunk {
		chunk := batched[start:min(start+batchChunk, len(batched))]
		changes, sent = changes[:0], sent[:0]
		clear(inBatch)
		for _, i := range chunk {
			op := ops[i]
			key := KeyOf(op.Service)
			if slow[key] || (failedSvc[key] && destWrite(op.Kind)) {
				continue
			}
			changes = append(changes, changeOf(op))
			sent = append(sent, i)
		}
		if len(changes) > 0 {
			for j, err := range bk.Batch(changes) {
				errs[sent[j]], inBatch[sent[j]] = err, true
			}
		}
		// The chunk's outcomes in plan order, followed up as apply
		// would follow them up.
		for _, i := range chunk {
			op := ops[i]
			key := KeyOf(op.Service)
			if failedSvc[key] && destWrite(op.Kind) {
				if !inBatch[i] || errs[i] != nil {
					skipped[i], errs[i] = true, nil
				}
				continue
			}
			switch err := errs[i]; {
			case !inBatch[i] || slow[key]:
				errs[i] = apply(k, op)
			case err != nil && staleView(op.Kind, err):
				slow[key] = true
				errs[i] = apply(k, op)
			case err != nil && (op.Kind == RemoveService || op.Kind == RemoveDest) && isNotExist(err):
				errs[i] = nil // gone already
			}
			if errs[i] != nil && op.Kind == CreateService {
				failedSvc[key] = true
			}
		}
	}
}

// executeOneByOne applies ops[i] for each i of idxs in turn.
func executeOneByOne(k Kernel, ops []Op, idxs []int, errs []error, skipped []bool) {
	failedSvc := map[SvcKey]bool{}
	for _, i := range idxs {
		op := ops[i]
		key := KeyOf(op.Service)
		if failedSvc[key] && destWrite(op.Kind) {
			skipped[i] = true // the service failed: each destination would too
			continue
		}
		if errs[i] = apply(k, op); errs[i] != nil && op.Kind == CreateService {
			failedSvc[key] = true
		}
	}
}
