package ipvsadm

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"

	"github.com/cloudflare/ipvs"
)

// Writer is the part of ipvs.Client that Apply needs: the calls that
// change the table, SetConfig for --set, and Services because -C has to
// remove the services one by one (cloudflare/ipvs has no flush).
type Writer interface {
	Services() ([]ipvs.ServiceExtended, error)
	CreateService(ipvs.Service) error
	UpdateService(ipvs.Service) error
	RemoveService(ipvs.Service) error
	CreateDestination(ipvs.Service, ipvs.Destination) error
	UpdateDestination(ipvs.Service, ipvs.Destination) error
	RemoveDestination(ipvs.Service, ipvs.Destination) error
	SetConfig(ipvs.Config) error
}

// Apply executes rules in order, as `ipvsadm -R` does: a rule the kernel
// refuses is reported and the next one is executed all the same. The
// error joins one *LineError (Skipped set) per failed rule, each with
// ipvsadm's message for the kernel's answer ("Service already exists",
// "No such destination"...) and the kernel's error wrapped. (ipvsadm's
// exit status only tells whether the last line worked; this tells about
// every line.)
func Apply(c Writer, rules []Rule) error {
	var errs []error
	for i := range rules {
		if err := applyRule(c, &rules[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Restore is `ipvsadm -R` with rules read from r: ParseRules, then Apply
// of what ipvsadm would execute, even past errors ipvsadm only reports.
// Like ipvsadm -R (and unlike ipvsadm-restore) it does not clear the
// table first: a restore file that should replace the table starts with
// -C. The error joins every line's error, in line order.
func Restore(c Writer, r io.Reader) error {
	rules, perr := ParseRules(r)
	aerr := Apply(c, rules)
	var lerrs []*LineError
	var other []error
	for _, e := range append(unjoin(perr), unjoin(aerr)...) {
		var le *LineError
		if errors.As(e, &le) {
			lerrs = append(lerrs, le)
		} else {
			other = append(other, e)
		}
	}
	slices.SortStableFunc(lerrs, func(a, b *LineError) int { return cmp.Compare(a.Line, b.Line) })
	for _, le := range lerrs {
		other = append(other, le)
	}
	return errors.Join(other...)
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// op names a kernel operation the way ipvsadm's ipvs_strerror tells
// which call failed.
type op int

const (
	opAddService op = iota + 1
	opUpdateService
	opDelService
	opAddDest
	opUpdateDest
	opDelDest
	opOther
)

// kernelMessage is libipvs's ipvs_strerror: the message ipvsadm prints
// for an errno from a call.
func kernelMessage(o op, err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return ""
	}
	type key struct {
		op    op
		errno syscall.Errno
	}
	specific := map[key]string{
		{opAddService, syscall.EEXIST}:    "Service already exists",
		{opAddService, syscall.ENOENT}:    "Scheduler or persistence engine not found",
		{opUpdateService, syscall.ESRCH}:  "No such service",
		{opUpdateService, syscall.ENOENT}: "Scheduler or persistence engine not found",
		{opDelService, syscall.ESRCH}:     "No such service",
		{opAddDest, syscall.ESRCH}:        "Service not defined",
		{opAddDest, syscall.EEXIST}:       "Destination already exists",
		{opUpdateDest, syscall.ESRCH}:     "Service not defined",
		{opUpdateDest, syscall.ENOENT}:    "No such destination",
		{opDelDest, syscall.ESRCH}:        "Service not defined",
		{opDelDest, syscall.ENOENT}:       "No such destination",
	}
	if m, ok := specific[key{o, errno}]; ok {
		return m
	}
	switch errno {
	case syscall.EPERM:
		return "Permission denied (you must be root)"
	case syscall.EINVAL:
		return "Invalid operation.  Possibly wrong module version, address not unicast, ..."
	case syscall.ENOPROTOOPT:
		return "Protocol not available"
	case syscall.ENOMEM:
		return "Memory allocation problem"
	case syscall.EOPNOTSUPP:
		return "Operation not supported with IPv6"
	case syscall.EAFNOSUPPORT:
		return "Operation not supported with specified address family"
	case syscall.EMSGSIZE:
		return "Module is wrong version"
	}
	return ""
}

func applyRule(c Writer, r *Rule) error {
	fail := func(o op, what string, err error) error {
		if m := kernelMessage(o, err); m != "" {
			err = fmt.Errorf("%s: %s: %w", what, m, err)
		} else {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return &LineError{Line: r.Line, Err: err, Skipped: true}
	}
	svc, dest := r.Service, r.Destination
	switch r.Command {
	case AddService, EditService:
		if r.PersistenceEngine != "" {
			return &LineError{Line: r.Line, Option: "--pe", Skipped: true,
				Err: fmt.Errorf("persistence engine %q: not supported by this IPVS client", r.PersistenceEngine)}
		}
		if r.Command == AddService {
			if err := c.CreateService(svc); err != nil {
				return fail(opAddService, "add service "+describeService(svc), err)
			}
			return nil
		}
		if err := c.UpdateService(svc); err != nil {
			return fail(opUpdateService, "edit service "+describeService(svc), err)
		}
	case DeleteService:
		if err := c.RemoveService(svc); err != nil {
			return fail(opDelService, "delete service "+describeService(svc), err)
		}
	case AddServer:
		if err := c.CreateDestination(svc, dest); err != nil {
			return fail(opAddDest, "add real server "+describeDest(dest)+" to "+describeService(svc), err)
		}
	case EditServer:
		if err := c.UpdateDestination(svc, dest); err != nil {
			return fail(opUpdateDest, "edit real server "+describeDest(dest)+" of "+describeService(svc), err)
		}
	case DeleteServer:
		if err := c.RemoveDestination(svc, dest); err != nil {
			return fail(opDelDest, "delete real server "+describeDest(dest)+" of "+describeService(svc), err)
		}
	case Flush:
		// ipvsadm sends IPVS_CMD_FLUSH; removing each service (and with
		// it its real servers) leaves the same empty table.
		svcs, err := c.Services()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(opOther, "clear: read services", err)
		}
		for _, s := range svcs {
			if err := c.RemoveService(s.Service); err != nil {
				return fail(opDelService, "clear: delete service "+describeService(s.Service), err)
			}
		}
	case SetTimeouts:
		if err := c.SetConfig(r.Timeouts); err != nil {
			return fail(opOther, "set timeouts", err)
		}
	case Zero:
		return &LineError{Line: r.Line, Skipped: true,
			Err: errors.New("zeroing counters (-Z) is not supported by this IPVS client")}
	default:
		return &LineError{Line: r.Line, Skipped: true, Err: fmt.Errorf("unknown command %v", r.Command)}
	}
	return nil
}

func describeDest(d ipvs.Destination) string {
	return addrPortNumeric(d.Family, d.Address, d.Port)
}
