package failover

// Link is one heartbeat path. Send and Recv may be called from different
// goroutines; Close unblocks Recv (which then returns an error wrapping
// net.ErrClosed).
//
// A link carries opaque frames, at most MaxFrameSize bytes for a
// heartbeat; it neither authenticates nor orders them (see Decode and
// ReplayGuard). Recv returns whole frames only: a buffer of
// MaxFrameSize bytes is enough, and a longer frame does not fit and is
// not a heartbeat anyway.
type Link interface {
	// Name says which path this is, for logs and metrics:
	// "udp eth1 192.168.50.2", "multicast eth0 239.192.0.18",
	// "serial /dev/ttyS1".
	Name() string
	Send(frame []byte) error
	// Recv blocks until a frame arrives, copies it into buf and returns
	// its length.
	Recv(buf []byte) (int, error)
	Close() error
}
