// Command realserver prepares a real server for LVS direct routing and
// tunnelling, and puts it back: see `realserver -h`.
package main

import (
	"fmt"
	"os"

	"github.com/directorlb/director/realserver"
	"github.com/directorlb/director/version"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Printf("realserver %s\n", version.String())
		return
	}
	os.Exit(realserver.Run(os.Args[1:], os.Stdout, os.Stderr, realserver.OpenNetlink))
}
