package config

import (
	"maps"
	"runtime"
	"sync"

	"gopkg.in/yaml.v3"
)

// decodedService is one services entry decoded: service's results.
type decodedService struct {
	svc *Service
	id  serviceID
}

// servicesInParallel decodes a long services list on several cores, or
// returns nil for services to decode it in order. Each service decodes
// alone (what depends on the others, unique names and kernel services,
// services checks afterwards, in order), so pieces of the list go to
// decoders of their own. Their results are taken only if no piece found
// a problem: a file with problems is decoded again in order, so that its
// messages, and which are kept past maxErrors, are exactly those of one
// decoder reading it from the top.
func (d *decoder) servicesInParallel(entries []*yaml.Node, first int, base Check) []decodedService {
	parts := min(runtime.GOMAXPROCS(0), splitMaxParts)
	if parts < 2 || len(entries) < splitMinItems {
		return nil
	}
	out := make([]decodedService, len(entries))
	subs := make([]*decoder, parts)
	var wg sync.WaitGroup
	for k := range subs {
		sub := &decoder{file: d.file, bgpMode: d.bgpMode}
		subs[k] = sub
		lo, hi := len(entries)*k/parts, len(entries)*(k+1)/parts
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				out[i].svc, out[i].id = sub.service(entries[i], index("services", first+i), base)
			}
		})
	}
	wg.Wait()
	count := d.realServerCount
	for _, sub := range subs {
		if len(sub.errs) > 0 || len(sub.warns) > 0 || sub.dropped > 0 {
			return nil
		}
		count += sub.realServerCount
	}
	if count > MaxRealServers {
		return nil // said at the list that crosses the limit, in order
	}
	// What the decoders kept for later checks, as one would have.
	d.realServerCount = count
	for _, sub := range subs {
		d.svcVIPs = append(d.svcVIPs, sub.svcVIPs...)
		if sub.where != nil {
			if d.where == nil {
				d.where = map[string]Pos{}
			}
			maps.Copy(d.where, sub.where)
		}
	}
	return out
}
