#!/bin/sh
# Prints director's version in a form Debian's version rules accept: what
# the binaries print (-version, set at link time by the Makefile) and the
# upstream part of the package's version (the packager adds the Debian
# revision, -1).
#
#   git describe           version
#   b1a9be5                0.0~git20261204.b1a9be5   (no tag yet: the commit's date, UTC)
#   b1a9be5-dirty          0.0~git20261204.b1a9be5+dirty
#   v1.2.0                 1.2.0
#   v1.2.0-3-gabcdef0      1.2.0+3.gabcdef0
#   v1.3.0-rc1             1.3.0~rc1                 (a pre-release sorts before 1.3.0)
#   (no git)               0.0~devel
#
# DESCRIBE and COMMIT_DATE (YYYYMMDD) override git's, for the tests.
set -eu
describe=${DESCRIBE-$(git describe --always --dirty 2>/dev/null || true)}
if [ -z "$describe" ]; then
  echo 0.0~devel
  exit 0
fi
dirty=
case $describe in
  *-dirty) dirty=1; describe=${describe%-dirty} ;;
esac
if printf '%s\n' "$describe" | grep -Eq '^[0-9a-f]{4,40}$'; then
  date=${COMMIT_DATE-$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d 2>/dev/null || true)}
  [ -n "$date" ] || { echo "version.sh: no commit date for $describe" >&2; exit 1; }
  v="0.0~git$date.$describe"
else
  # TAG or TAG-N-gHASH: the tag without its v, a pre-release's - as ~.
  since=
  if printf '%s\n' "$describe" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
    since=$(printf '%s\n' "$describe" | sed -E 's/^.*-([0-9]+)-g([0-9a-f]+)$/\1.g\2/')
    describe=$(printf '%s\n' "$describe" | sed -E 's/-[0-9]+-g[0-9a-f]+$//')
  fi
  v=$(printf '%s\n' "${describe#v}" | tr - '~')
  [ -z "$since" ] || v="$v+$since"
fi
if [ -n "$dirty" ]; then
  case $v in
    *+*) v="$v.dirty" ;;
    *) v="$v+dirty" ;;
  esac
fi
if ! printf '%s\n' "$v" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
  echo "version.sh: git describe gave $describe, which makes no Debian version ($v): tag releases vX.Y.Z" >&2
  exit 1
fi
echo "$v"
