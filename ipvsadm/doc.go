// Package ipvsadm reads, writes and restores the kernel's IPVS table in
// the text formats of ipvsadm 1.31 (Debian 12's), byte for byte, so that
// `directorctl list`, `save` and `restore` can stand in for `ipvsadm -L`,
// `ipvsadm -S -n` and `ipvsadm -R`:
//
//   - Read reads the table through an ipvs.Client and sorts it as ipvsadm
//     does (ReadUnsorted for --nosort).
//   - WriteList prints it as `ipvsadm -L [-n] [--stats|--rate|--thresholds|
//     --persistent-conn|--tun-info] [--exact]`; WriteSave as `ipvsadm -S -n`;
//     WriteJSON as a stable JSON document.
//   - ParseRules reads what `ipvsadm -R` reads, and Apply executes it as
//     ipvsadm -R does; Restore does both.
//
// The formats are ipvsadm's, quirks included: fwmarks printed with %d,
// addresses sorted by wrapping 32-bit differences, names truncated to
// the column. The references are to ipvsadm 1.31's ipvsadm.c and
// libipvs/libipvs.c.
package ipvsadm
