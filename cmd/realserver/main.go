// Command realserver prepares a real server for LVS direct routing and
// tunnelling, and puts it back: see `realserver -h`.
package main

import (
	"os"

	"github.com/directorlb/director/realserver"
)

func main() {
	os.Exit(realserver.Run(os.Args[1:], os.Stdout, os.Stderr, realserver.OpenNetlink))
}
