// Package packaging holds director's Debian packaging, none of it Go: the
// nfpm description (nfpm.yaml), the scripts that build the packages
// (deb.sh, version.sh, copyright.sh) and test them in a clean Debian 12
// root (test-deb.sh), the maintainer scripts, and the files the package
// ships that live nowhere else (the commented director.yaml, the
// modules-load.d list, the lintian overrides). Its Go tests check those
// files; `make deb` and `make test-deb` run the rest.
package packaging
