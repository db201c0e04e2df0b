#!/bin/sh
# Writes the package's copyright file (Debian's machine-readable format)
# on stdout: director's own paragraph, then one for Go's standard library
# and one for each module statically linked into the binaries given as
# arguments (as `go version -m` lists them), with its licence, read from
# the module cache. Licences in /usr/share/common-licenses are referred
# to; the others are quoted whole, as Debian asks.
set -eu
modcache=$(go env GOMODCACHE)
goroot=$(go env GOROOT)
maint="director maintainers <maintainers@users.noreply.h-seed-2f0886ea.example>"

# indent quotes a licence text as a field's continuation lines.
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'; }

# classify names the licence of the text in file $1.
classify() {
  if grep -q 'Apache License' "$1" && grep -q 'Version 2.0' "$1"; then echo Apache-2.0
  elif grep -q 'Mozilla Public License' "$1" && grep -q '2\.0' "$1"; then echo MPL-2.0
  elif grep -q 'Permission is hereby granted, free of charge' "$1"; then echo Expat
  elif grep -q 'Permission to use, copy, modify, and/or distribute' "$1"; then echo ISC
  elif grep -q 'Redistribution and use in source and binary forms' "$1"; then
    if grep -qi 'neither the name\|names of its contributors\|endorse or promote' "$1"; then echo BSD-3-clause; else echo BSD-2-clause; fi
  else echo "other"
  fi
}

# holders is the file's copyright lines, or the module's authors.
holders() {
  h=$(grep -i '^[[:space:]]*copyright (c)\|^[[:space:]]*copyright [0-9]' "$1" | sed -e 's/^[[:space:]]*//' -e 's/^[Cc]opyright *([Cc]) *//' -e 's/^[Cc]opyright *//' | sort -u || true)
  [ -n "$h" ] || h="the authors of $2"
  printf '%s\n' "$h" | sed '2,$s/^/ /'
}

cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: director
Upstream-Contact: $maint

Files: *
Copyright: 2026 the director maintainers
License: director-undeclared
 The director repository does not declare a licence yet.
 .
 The binaries also contain Go's standard library and the modules listed
 below, statically linked (CGO_ENABLED=0), each under its own licence.

Files: go/*
Copyright: $(holders "$goroot/LICENSE" Go)
Comment: Go's standard library and runtime, $(go env GOVERSION), statically linked.
License: BSD-3-clause
$(indent < "$goroot/LICENSE")
HEAD

go version -m "$@" | awk '$1 == "dep" || $1 == "=>" { print $2 " " $3 }' | sort -u |
while read -r mod ver; do
  esc=$(printf '%s' "$mod" | sed 's/[A-Z]/!&/g' | tr 'A-Z' 'a-z')
  dir="$modcache/$esc@$ver"
  lic=$(ls "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/license* 2>/dev/null | head -1 || true)
  if [ -z "$lic" ]; then
    echo "copyright.sh: no licence file for $mod $ver in $dir" >&2
    exit 1
  fi
  name=$(classify "$lic")
  echo
  echo "Files: go/$mod/*"
  echo "Copyright: $(holders "$lic" "$mod")"
  echo "Comment: Go module $mod $ver, statically linked."
  case $name in
    Apache-2.0|MPL-2.0)
      echo "License: $name"
      echo " On Debian systems, the full text of the licence is in"
      echo " /usr/share/common-licenses/$name."
      ;;
    other)
      echo "License: other-$(printf '%s' "$mod" | tr '/.' '--')"
      indent < "$lic"
      ;;
    *)
      echo "License: $name"
      indent < "$lic"
      ;;
  esac
done
