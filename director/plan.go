package director

import (
	"context"
	"fmt"
	"strings"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/ipvsadm"
)

// Plan is what Reload(cfg) would change in the kernel now, against the
// kernel as last read plus the director's own changes since, without
// changing anything: `directorctl reload --dry-run`. cfg must be valid.
// Servers new to the health checks are planned at the weight they would
// enter with, as Reload would put them.
func (d *Director) Plan(ctx context.Context, cfg *config.Config) ([]Op, error) {
	var ops []Op
	err := d.do(ctx, func(st *state) {
		// NextDesiredTable only reads st.desired: unchanged entries are
		// shared, changed ones are new.
		desired := NextDesiredTable(cfg, d.weights, st.desired)
		ops = Diff(desired, d.rec.View(), d.rec.Owned).Ops
		// A service adopted from the kernel has no name in the view:
		// the config in force has it.
		for i := range ops {
			if ops[i].Name == "" {
				if e := st.desired[KeyOf(ops[i].Service)]; e != nil {
					ops[i].Name = e.Name
				}
			}
		}
	})
	return ops, err
}

// Describe says what op changes, in ipvsadm's words: for an edit, each
// field that changes, old -> new.
func Describe(op Op) string {
	svc := KeyOf(op.Service).String()
	if op.Name != "" {
		svc = op.Name + " (" + svc + ")"
	}
	switch op.Kind {
	case CreateService:
		return fmt.Sprintf("add service %s: %s", svc, serviceFields(op.Service))
	case RemoveService:
		return fmt.Sprintf("remove service %s", svc)
	case UpdateService:
		return fmt.Sprintf("edit service %s: %s", svc, changes(serviceFieldList(op.OldService), serviceFieldList(op.Service)))
	case CreateDest:
		return fmt.Sprintf("add real server %s to %s: %s", DestKeyOf(op.Dest), svc, destFields(op.Dest))
	case RemoveDest:
		return fmt.Sprintf("remove real server %s from %s", DestKeyOf(op.Dest), svc)
	case UpdateDest:
		return fmt.Sprintf("edit real server %s of %s: %s", DestKeyOf(op.Dest), svc, changes(destFieldList(op.OldDest), destFieldList(op.Dest)))
	}
	return op.String()
}

type field struct{ name, value string }

func serviceFieldList(s ipvs.Service) []field {
	s = normalService(s)
	f := []field{{"scheduler", s.Scheduler}, {"flags", serviceFlags(s.Flags)}}
	if s.Flags&ipvs.ServicePersistent != 0 {
		f = append(f, field{"persistent", fmt.Sprintf("%ds", s.Timeout)}, field{"netmask", fmt.Sprint(s.Netmask.Bits())})
	} else {
		f = append(f, field{"persistent", "no"})
	}
	return f
}

func serviceFlags(fl ipvs.Flags) string {
	var out []string
	if fl&ipvs.ServiceOnePacket != 0 {
		out = append(out, "ops")
	}
	if fl&ipvs.ServiceSchedulerOpt1 != 0 {
		out = append(out, "flag-1")
	}
	if fl&ipvs.ServiceSchedulerOpt2 != 0 {
		out = append(out, "flag-2")
	}
	if fl&ipvs.ServiceSchedulerOpt3 != 0 {
		out = append(out, "flag-3")
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

func destFieldList(d ipvs.Destination) []field {
	f := []field{{"forward", ipvsadm.ForwardName(d.FwdMethod)}, {"weight", fmt.Sprint(d.Weight)},
		{"upper_threshold", fmt.Sprint(d.UpperThreshold)}, {"lower_threshold", fmt.Sprint(d.LowerThreshold)}}
	if d.FwdMethod == ipvs.Tunnel {
		f = append(f, field{"tunnel", fmt.Sprintf("%v port %d %v", d.TunnelType, d.TunnelPort, d.TunnelFlags)})
	}
	return f
}

func serviceFields(s ipvs.Service) string  { return join(serviceFieldList(s)) }
func destFields(d ipvs.Destination) string { return join(destFieldList(d)) }

func join(fs []field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.name + " " + f.value
	}
	return strings.Join(parts, ", ")
}

// changes lists the fields whose value differs; old and new have the
// same fields in the same order, but for those one side lacks.
func changes(old, new []field) string {
	was := map[string]string{}
	for _, f := range old {
		was[f.name] = f.value
	}
	var parts []string
	for _, f := range new {
		if o, ok := was[f.name]; !ok || o != f.value {
			if !ok {
				o = "-"
			}
			parts = append(parts, fmt.Sprintf("%s %s -> %s", f.name, o, f.value))
		}
	}
	if len(parts) == 0 {
		return "no visible change"
	}
	return strings.Join(parts, ", ")
}
