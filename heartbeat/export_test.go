package heartbeat

// What the external tests (package heartbeat_test, which drive a
// failover.Node over a link) need of the package's insides.
var (
	SerialMakeRaw = serialMakeRaw
	SerialEncode  = serialEncode
	TestKey       = wireTestKey
	TestLogger    = testLogger
	OpenPty       = openPty
)
