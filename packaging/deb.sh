#!/usr/bin/env bash
# Builds build/director_VERSION-1_amd64.deb and _arm64.deb (make deb):
# static binaries cross-compiled with CGO_ENABLED=0, stripped; the man
# pages of build/man (make man) and the docs compressed as Debian's
# dh_compress would; a changelog.Debian.gz and a copyright file naming
# every module linked in; then nfpm, pinned, from packaging/nfpm.yaml.
#
# ARCHES="amd64" packaging/deb.sh builds one. VERSION overrides
# packaging/version.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
NFPM=(go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0)
arches=${ARCHES:-amd64 arm64}
version=${VERSION:-$(packaging/version.sh)}
stage=build/deb
rm -rf "$stage" build/director_*.deb
root=$stage/root
doc=$root/usr/share/doc/director
mkdir -p "$doc"

gz() { gzip -9n < "$1" > "$2"; }

# Manual pages, as make man wrote them (whatever it has written).
shopt -s nullglob
pages=(build/man/*.[1-8])
if ((${#pages[@]} == 0)); then
  echo "deb.sh: warning: no manual page under build/man (make man): the package has none" >&2
fi
for p in "${pages[@]}"; do
  sec=${p##*.}
  mkdir -p "$root/usr/share/man/man$sec"
  gz "$p" "$root/usr/share/man/man$sec/$(basename "$p").gz"
done
if [ -f deploy/completion/directorctl.bash ]; then
  mkdir -p "$root/usr/share/bash-completion/completions"
  install -m 0644 deploy/completion/directorctl.bash "$root/usr/share/bash-completion/completions/directorctl"
fi

# Documentation: over 4 kB compressed, as dh_compress does; the examples
# as they are, to be copied.
for f in README.md docs/install.md docs/configuration.md docs/import.md; do
  if [ "$(stat -c %s "$f")" -gt 4096 ]; then
    gz "$f" "$doc/$(basename "$f").gz"
  else
    install -m 0644 "$f" "$doc/"
  fi
done
mkdir -p "$doc/examples"
cp -r deploy/examples/. "$doc/examples/"

describe=$(git describe --always --dirty 2>/dev/null || echo none)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
sed -e "s/@VERSION@/$version/" -e "s/@COMMIT@/$commit/" -e "s/@DESCRIBE@/$describe/" -e "s/@DATE@/$date/" \
  packaging/changelog.in > "$stage/changelog"
gz "$stage/changelog" "$doc/changelog.Debian.gz"

# Every file mode as the package has it, whatever the checkout's umask.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +

ldflags="-s -w -X github.com/directorlb/director/version.describe=$version"
for arch in $arches; do
  mkdir -p "$stage/$arch"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$stage/$arch/" \
    ./cmd/directord ./cmd/directorctl ./cmd/realserver
done
# Both architectures link the same modules: the first one's list will do.
first=${arches%% *}
packaging/copyright.sh "$stage/$first"/* > "$doc/copyright"

# nfpm's config: packaging/nfpm.yaml and the staged files.
{
  cat packaging/nfpm.yaml
  (cd "$root" && find . -type f | sort) | while read -r f; do
    printf '  - src: %s\n    dst: %s\n    file_info: {mode: 0644}\n' "$root/${f#./}" "/${f#./}"
  done
} > "$stage/nfpm.yaml"

for arch in $arches; do
  ARCH=$arch DEB_VERSION=$version SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) \
    "${NFPM[@]}" package -f "$stage/nfpm.yaml" -p deb -t build/
done
ls -l build/director_*.deb
