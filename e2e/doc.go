// Package e2e holds the end-to-end scenarios that run in the lab VM against
// the real kernel: client, directors and real servers in network
// namespaces, real traffic between them.
//
// The tests carry the "lab" build tag: `go test ./...` on the host skips
// them, and `make e2e` (go run ./lab/cmd/lab test) builds them and runs them
// in one boot of the VM. On a machine whose kernel has IPVS, as root,
// `go test -tags lab ./e2e` runs them directly.
package e2e
