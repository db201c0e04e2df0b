package heartbeat

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DrainRecord is an operator's last word on one real server of one
// service: drained (weight 0) or put back, and when. The pair keeps the
// newest record for each server on both directors, so a drain made on
// either holds on both, through a failover.
type DrainRecord struct {
	Service string
	Server  netip.AddrPort
	Drained bool
	At      time.Time
}

// Drain records on the wire, after the header of a KindDrains message:
//
//	count 1 | count × (service length 1 | service | family 1 (4 or 6) |
//	address 4 or 16 | port 2 | drained 1 (0 or 1) | at (unix ns) 8)
//
// A service name is what the config allows ([a-z0-9_.-], 1 to
// MaxDrainService bytes), so a record can be logged as it is.
const (
	MaxDrainService = 64
	drainFixedLen   = 1 + 1 + 2 + 1 + 8 // service length, family, port, drained, at
	// maxDrainPayload keeps a whole frame within what every link
	// carries (a serial link's 1024-byte frame).
	maxDrainPayload = MaxFrameSize - wireOffName - MaxNodeName - wirePayloadLenSize - wireMACSize
)

func drainRecordLen(r DrainRecord) int {
	n := drainFixedLen + len(r.Service) + 4
	if r.Server.Addr().Is6() {
		n += 12
	}
	return n
}

func validDrainService(s string) error {
	if s == "" || len(s) > MaxDrainService {
		return fmt.Errorf("drain: service name of %d bytes, want 1 to %d", len(s), MaxDrainService)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("drain: service name %q holds %q", s, c)
		}
	}
	return nil
}

func validDrainRecord(r DrainRecord) error {
	if err := validDrainService(r.Service); err != nil {
		return err
	}
	if a := r.Server.Addr(); !a.IsValid() || a.Zone() != "" || a.Is4In6() {
		return fmt.Errorf("drain: server address %v", r.Server)
	}
	if r.At.Before(wireMinTime) || r.At.After(wireMaxTime) {
		return fmt.Errorf("drain: time %v out of range", r.At)
	}
	return nil
}

// appendDrains encodes recs as a payload.
func appendDrains(b []byte, recs []DrainRecord) ([]byte, error) {
	if len(recs) > 255 {
		return nil, fmt.Errorf("%d drain records in one message, at most 255", len(recs))
	}
	b = append(b, byte(len(recs)))
	for _, r := range recs {
		if err := validDrainRecord(r); err != nil {
			return nil, err
		}
		b = append(b, byte(len(r.Service)))
		b = append(b, r.Service...)
		a := r.Server.Addr()
		if a.Is4() {
			a4 := a.As4()
			b = append(append(b, 4), a4[:]...)
		} else {
			a16 := a.As16()
			b = append(append(b, 6), a16[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, r.Server.Port())
		var dr byte
		if r.Drained {
			dr = 1
		}
		b = append(b, dr)
		b = binary.BigEndian.AppendUint64(b, uint64(r.At.UnixNano()))
	}
	return b, nil
}

var errDrainPayload = errors.New("drain records")

// parseDrains decodes a payload that appendDrains wrote; anything else is
// an error, so that whatever it accepts encodes back byte for byte.
func parseDrains(b []byte) ([]DrainRecord, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errDrainPayload)
	}
	n := int(b[0])
	b = b[1:]
	recs := make([]DrainRecord, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 1 {
			return nil, fmt.Errorf("%w: record %d cut short", errDrainPayload, i)
		}
		sl := int(b[0])
		if len(b) < 1+sl+1 {
			return nil, fmt.Errorf("%w: record %d cut short", errDrainPayload, i)
		}
		svc := string(b[1 : 1+sl])
		b = b[1+sl:]
		var a netip.Addr
		switch b[0] {
		case 4:
			if len(b) < 1+4 {
				return nil, fmt.Errorf("%w: record %d cut short", errDrainPayload, i)
			}
			a = netip.AddrFrom4([4]byte(b[1:5]))
			b = b[5:]
		case 6:
			if len(b) < 1+16 {
				return nil, fmt.Errorf("%w: record %d cut short", errDrainPayload, i)
			}
			a = netip.AddrFrom16([16]byte(b[1:17]))
			b = b[17:]
		default:
			return nil, fmt.Errorf("%w: record %d: address family %d", errDrainPayload, i, b[0])
		}
		if len(b) < 2+1+8 {
			return nil, fmt.Errorf("%w: record %d cut short", errDrainPayload, i)
		}
		if b[2] > 1 {
			return nil, fmt.Errorf("%w: record %d: drained %d", errDrainPayload, i, b[2])
		}
		r := DrainRecord{
			Service: svc,
			Server:  netip.AddrPortFrom(a, binary.BigEndian.Uint16(b)),
			Drained: b[2] == 1,
			At:      time.Unix(0, int64(binary.BigEndian.Uint64(b[3:]))),
		}
		if err := validDrainRecord(r); err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", errDrainPayload, i, err)
		}
		recs = append(recs, r)
		b = b[11:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", errDrainPayload, len(b))
	}
	return recs, nil
}

// SortDrains puts records in a canonical order: by service, then server.
func SortDrains(recs []DrainRecord) {
	slices.SortFunc(recs, func(a, b DrainRecord) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), a.Server.Compare(b.Server))
	})
}

// DrainDigest summarises a set of records, whatever their order: two
// directors with the same records have the same digest, and a heartbeat
// carrying it tells the peer whether they agree.
func DrainDigest(recs []DrainRecord) [8]byte {
	sorted := slices.Clone(recs)
	SortDrains(sorted)
	h := sha256.New()
	var buf []byte
	for _, r := range sorted {
		buf, _ = appendDrains(buf[:0], []DrainRecord{r})
		h.Write(buf)
	}
	var d [8]byte
	copy(d[:], h.Sum(nil))
	return d
}

// SplitDrains cuts recs into groups that each fit one message.
func SplitDrains(recs []DrainRecord) [][]DrainRecord {
	var out [][]DrainRecord
	var cur []DrainRecord
	size := 1
	for _, r := range recs {
		l := drainRecordLen(r)
		if len(cur) > 0 && (size+l > maxDrainPayload || len(cur) == 255) {
			out = append(out, cur)
			cur, size = nil, 1
		}
		cur = append(cur, r)
		size += l
	}
	if len(cur) > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}
