package config

import (
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const durationWant = "a duration such as 500ms, 2s or 1m30s, or a number of seconds"

// maxKernelSeconds is the longest timeout ipvsadm accepts for -p and --set
// (31 days); beyond it the kernel's jiffies arithmetic overflows.
const maxKernelSeconds = 31 * 24 * 3600

// duration reads a Go duration string or a plain number of seconds, the
// way ipvsadm and heartbeat configs write timeouts. Negative durations are
// refused: none of ours has a meaning for them.
func (d *decoder) duration(n *yaml.Node, key string) (time.Duration, bool) {
	s, ok := d.scalar(n, key, durationWant)
	if !ok {
		return 0, false
	}
	if strings.HasPrefix(s, "-") {
		d.errorf(n, key, "must not be negative, got %s", describe(n))
		return 0, false
	}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs > math.MaxInt64/int64(time.Second) {
			d.errorf(n, key, "must be %s, got %s (too long)", durationWant, describe(n))
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, key, "must be %s, got %s", durationWant, describe(n))
		return 0, false
	}
	return v, true
}

// interval reads a duration directord waits or times something by: at
// least a millisecond. Less is no setting anyone means (a timer firing
// every microsecond is a busy loop, a hook given a microsecond always
// times out), and the heartbeat's timing is in milliseconds.
func (d *decoder) interval(n *yaml.Node, key string) (time.Duration, bool) {
	v, ok := d.duration(n, key)
	if ok && v < time.Millisecond {
		if v <= 0 {
			d.errorf(n, key, "must be longer than 0, got %s", describe(n))
		} else {
			d.errorf(n, key, "must be at least 1ms, got %s", describe(n))
		}
		return 0, false
	}
	return v, ok
}

// seconds reads a kernel timeout: whole seconds up to maxKernelSeconds,
// because that is all the kernel stores.
func (d *decoder) seconds(n *yaml.Node, key string) (time.Duration, bool) {
	v, ok := d.duration(n, key)
	if !ok {
		return 0, false
	}
	if v%time.Second != 0 {
		d.errorf(n, key, "must be whole seconds, got %s", describe(n))
		return 0, false
	}
	if v > maxKernelSeconds*time.Second {
		d.errorf(n, key, "must be at most %ds (31 days, as ipvsadm), got %s", maxKernelSeconds, describe(n))
		return 0, false
	}
	return v, true
}
