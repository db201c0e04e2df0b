package manual

// KeyBlock is one mapping of a configuration file and its keys.
type KeyBlock struct {
	// Path is where the mapping is: "" the top level, "services[]" each
	// entry of services, "check" every check (defaults.check and each
	// service's).
	Path string
	Text string
	Keys []Key
}

// Key is one key of a mapping.
type Key struct {
	Name string
	Type string
	// Default is the value when the key is not written, as the file
	// would write it ("5s", "false"), or what stands in for one
	// ("required", "none", "the service's").
	Default string
	Help    string
}

// Title is the block's heading in the page.
func (b KeyBlock) Title() string {
	if b.Path == "" {
		return "top level"
	}
	return b.Path
}
