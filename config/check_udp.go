package config

// checkUDPICMPSIP holds the rules of the udp, icmp and sip checks that the
// generic ones in check do not cover. udp shares send and expect with tcp
// (checked there); sip has no key of its own.
func (d *decoder) checkUDPICMPSIP(f *fields, c Check, typeOK bool) {
	if !typeOK || c.Type != CheckICMP {
		return
	}
	// An echo request has no port: a port written here is a mistake
	// (perhaps meant for another type), not something to ignore.
	if v := f.value("port"); v != nil {
		d.errorf(f.key("port"), f.sub("port"), "means nothing to an icmp check, which sends echo requests to the address")
	}
}
