#!/usr/bin/env bash
# The package's test (make test-deb, part of make test; needs root):
# lintian on both .debs, then, in a clean Debian 12 root made with
# debootstrap, install, upgrade, remove and purge the amd64 one and check
# what each leaves: the files, the units (systemd-analyze verify, not
# enabled by the install), the versions the programs print, check-config
# on the shipped file, and what the maintainer scripts asked systemd to do.
#
# The root is made once and cached as a tarball under
# ${XDG_CACHE_HOME:-~/.cache}/director-deb (debootstrap from the apt
# mirror, about a minute); later runs unpack it.
#
# Usage: packaging/test-deb.sh build/director_V-1_amd64.deb [build/director_V-1_arm64.deb]
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (chroot, dpkg)" >&2; exit 1; }
deb=$1
shift
others=("$@")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# --- lintian ---------------------------------------------------------------
for d in "$deb" "${others[@]}"; do
  # Errors and warnings fail; the package's overrides say why the ones it
  # has are there. Infos are shown, not counted.
  out=$(lintian --pedantic -I "$d" 2>&1 | grep -v '^running with root privileges' || true)
  [ -z "$out" ] || printf '%s\n' "$out"
  if printf '%s\n' "$out" | grep -q '^[EW]: '; then
    fail "lintian reports errors or warnings on $(basename "$d")"
  else
    ok "lintian: no error or warning on $(basename "$d")"
  fi
done
for d in "${others[@]}"; do
  # A cross-built package carries binaries for its architecture.
  arch=$(dpkg-deb -f "$d" Architecture)
  tmp=$(mktemp -d)
  dpkg-deb -x "$d" "$tmp"
  machine=$(od -An -tx2 -j18 -N2 "$tmp/usr/sbin/directord" | tr -d ' ')
  rm -rf "$tmp"
  case $arch:$machine in
    arm64:00b7 | amd64:003e) ok "$arch package holds $arch binaries" ;;
    *) fail "$arch package: directord's ELF machine is 0x$machine" ;;
  esac
done

# --- a clean Debian 12 root ------------------------------------------------
cache=${XDG_CACHE_HOME:-$HOME/.cache}/director-deb
tarball=$cache/bookworm-minbase-systemd-amd64.tar.gz
if [ ! -f "$tarball" ]; then
  echo "test-deb: making a Debian 12 root with debootstrap (once; cached as $tarball)"
  mkdir -p "$cache"
  boot=$(mktemp -d)
  # systemd for systemd-analyze, man-db for its check of the units'
  # Documentation= pages.
  mirror=http://deb.debian.org/debian
  debootstrap --variant=minbase --include=systemd,man-db bookworm "$boot" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$boot"; exit 1; }
  tar -C "$boot" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$boot"
fi
root=$(mktemp -d /tmp/director-test-deb.XXXXXX)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xzf "$tarball"
# A system's root directory, not mktemp's 0700: mandb runs as user man.
chmod 0755 "$root"
in_root() { chroot "$root" "$@"; }

# The maintainer scripts act on systemd only when it runs; make them
# believe it does, and record what they ask deb-systemd-invoke to do
# (their systemctl daemon-reload finds no bus and is ignored). systemctl
# is the host's, on the root (--root: offline, as in an image build).
mkdir -p "$root/run/systemd/system"
cat >"$root/usr/bin/deb-systemd-invoke" <<'INVOKE'
#!/bin/sh
echo "$*" >> /var/log/deb-systemd-invoke.log
INVOKE
chmod 0755 "$root/usr/bin/deb-systemd-invoke"
invoked() { cat "$root/var/log/deb-systemd-invoke.log" 2>/dev/null || true; }
: >"$root/var/log/deb-systemd-invoke.log"

cp "$deb" "$root/tmp/director.deb"
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}

# --- install ---------------------------------------------------------------
if in_root dpkg -i /tmp/director.deb; then ok "dpkg -i"; else fail "dpkg -i"; fi
files=(/usr/sbin/directord /usr/sbin/directorctl /usr/sbin/realserver
  /usr/lib/systemd/system/directord.service /usr/lib/systemd/system/realserver.service
  /usr/lib/modules-load.d/director.conf
  /usr/share/director/grafana/director.json /usr/share/director/prometheus/director-alerts.yaml
  /usr/share/doc/director/copyright /usr/share/doc/director/changelog.Debian.gz
  /usr/share/doc/director/README.md.gz /usr/share/doc/director/examples/dr.yaml
  /usr/share/man/man8/directord.8.gz /usr/share/man/man8/directorctl.8.gz /usr/share/man/man8/realserver.8.gz
  /usr/share/man/man5/director.yaml.5.gz /usr/share/bash-completion/completions/directorctl)
for f in "${files[@]}" /etc/director/director.yaml /etc/director/realserver.yaml; do
  [ -e "$root$f" ] || fail "installed: $f missing"
done
conffiles=$(in_root dpkg-query -W -f='${Conffiles}' director)
for f in /etc/director/director.yaml /etc/director/realserver.yaml; do
  grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
for p in directord directorctl realserver; do
  got=$(in_root /usr/sbin/$p -version 2>&1 || true)
  if [ "$got" = "$p $upstream" ]; then ok "$p -version: $got"; else fail "$p -version: '$got', want '$p $upstream'"; fi
done
if out=$(in_root directorctl check-config /etc/director/director.yaml 2>&1); then
  ok "check-config accepts the shipped director.yaml: $out"
else
  fail "check-config refuses the shipped director.yaml: $out"
fi
for u in directord realserver; do
  state=$(systemctl --root="$root" is-enabled $u.service 2>&1 || true)
  [ "$state" = disabled ] || fail "$u.service after install: $state, want disabled"
done
[ -z "$(invoked)" ] || fail "install asked systemd: $(invoked)"
ok "installed disabled, nothing started"
if out=$(in_root systemd-analyze verify /usr/lib/systemd/system/directord.service /usr/lib/systemd/system/realserver.service 2>&1) && [ -z "$out" ]; then
  ok "systemd-analyze verify: the installed units"
else
  fail "systemd-analyze verify: $out"
fi

# --- upgrade (the same version again: postinst configure with a version) ----
if in_root dpkg -i /tmp/director.deb >/dev/null; then ok "dpkg -i again (upgrade)"; else fail "dpkg -i again"; fi
[ "$(invoked)" = "try-restart directord.service" ] || fail "upgrade asked systemd: '$(invoked)', want try-restart directord.service"
: >"$root/var/log/deb-systemd-invoke.log"

# --- the admin's work, then remove -----------------------------------------
systemctl --root="$root" enable directord.service >/dev/null 2>&1 || fail "systemctl enable directord"
link=/etc/systemd/system/multi-user.target.wants/directord.service
[ -L "$root$link" ] || fail "enable made no $link"
echo "node: edited" >>"$root/etc/director/director.yaml"
install -m 0600 /dev/null "$root/etc/director/authkey"
mkdir -p "$root/var/lib/director" && echo '{}' >"$root/var/lib/director/drains.json"

if in_root dpkg -r director >/dev/null; then ok "dpkg -r"; else fail "dpkg -r"; fi
[ "$(invoked)" = "stop directord.service realserver.service" ] || fail "remove asked systemd: '$(invoked)', want stop of both"
for f in "${files[@]}"; do
  [ ! -e "$root$f" ] || fail "after remove: $f still there"
done
grep -q '^node: edited$' "$root/etc/director/director.yaml" || fail "after remove: the edited director.yaml is gone"
[ -e "$root/etc/director/realserver.yaml" ] || fail "after remove: realserver.yaml is gone"
[ -e "$root/var/lib/director/drains.json" ] || fail "after remove: /var/lib/director is gone"
status=$(in_root dpkg-query -W -f='${db:Status-Abbrev}' director)
[ "$status" = "rc " ] || fail "after remove: dpkg status '$status', want 'rc '"
ok "remove: programs and units gone; /etc/director and /var/lib/director kept"

# --- purge -----------------------------------------------------------------
if in_root dpkg -P director >/dev/null 2>&1; then ok "dpkg -P"; else fail "dpkg -P"; fi
for f in /etc/director/director.yaml /etc/director/realserver.yaml /var/lib/director "$link"; do
  [ ! -e "$root$f" ] && [ ! -L "$root$f" ] || fail "after purge: $f still there"
done
[ -e "$root/etc/director/authkey" ] || fail "after purge: the admin's /etc/director/authkey is gone"
if in_root dpkg-query -W director >/dev/null 2>&1 && [ -n "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' director | tr -d ' n')" ]; then
  fail "after purge: dpkg still knows director"
fi
ok "purge: the config, the state and the enable link gone; the admin's own files kept"

if ((failures)); then
  echo "test-deb: $failures failure(s)" >&2
  exit 1
fi
echo "test-deb: ok"
