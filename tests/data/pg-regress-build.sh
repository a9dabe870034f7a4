#!/usr/bin/env bash
# tests/data/pg-regress-build.sh: builds what PostgreSQL's `make installcheck` needs (pg_regress,
# regress.so, refint.so, autoinc.so) from Debian's source package of the installed server, once,
# and prints the directory of the built tree (src/test/regress is under it). Later calls find the
# cache and print the same directory at once.
#
#   tests/data/pg-regress-build.sh [CACHE_DIR]   (default ${BICA_TEST_CACHE:-/var/cache/bica-test})
#
# Run as root (apt-get). The source is `apt-get source postgresql-MAJOR` of the installed
# version, through a deb-src line added for the suites the machine already uses.
set -euo pipefail

cache=${1:-${BICA_TEST_CACHE:-/var/cache/bica-test}}
major=$(pg_config --version 2>/dev/null | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
[ -n "$major" ] || major=$(psql --version | sed -n 's/.*(PostgreSQL) \([0-9]*\).*/\1/p')
version=$(dpkg-query -W -f='${Version}' "postgresql-$major")
dir="$cache/pg-regress/$version"
if [ -f "$dir/.built" ]; then
	cat "$dir/.built"
	exit 0
fi

log() { printf 'pg-regress-build: %s\n' "$*" >&2; }
mkdir -p "$dir"
cd "$dir"

if ! apt-get source --print-uris "postgresql-$major=$version" >/dev/null 2>&1; then
	# A deb-src twin of every deb source the machine uses (so the installed version's source,
	# from whichever suite it came, is found); removed with `rm`, see the README.
	log "adding deb-src lines for the machine's apt sources"
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		[ "${f##*/}" = bica-test-src.sources ] && continue
		sed -E 's/^Types:.*$/Types: deb-src/' "$f"
		echo
	done >/etc/apt/sources.list.d/bica-test-src.sources
	[ -s /etc/apt/sources.list.d/bica-test-src.sources ] || rm -f /etc/apt/sources.list.d/bica-test-src.sources
	if [ -f /etc/apt/sources.list ]; then
		sed -n -E 's/^deb[[:space:]]/deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/bica-test-src.list
		[ -s /etc/apt/sources.list.d/bica-test-src.list ] || rm -f /etc/apt/sources.list.d/bica-test-src.list
	fi
	apt-get update -qq
fi
command -v dpkg-source >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null

log "apt-get source postgresql-$major=$version"
rm -rf src
mkdir src
(cd src && apt-get source -qq --download-only "postgresql-$major=$version" >/dev/null &&
	dpkg-source -x --skip-patches ./*.dsc tree >/dev/null)
tree="$dir/src/tree"
log "configure and build src/test/regress in $tree"
(cd "$tree" && ./configure -q --without-icu --without-readline --without-zlib >configure.log 2>&1 &&
	make -s -C src/test/regress -j"$(nproc)" >make.log 2>&1) || {
	log "build failed; see $tree/configure.log and $tree/make.log"
	exit 1
}
printf '%s\n' "$tree" >.built
cat .built
