#!/usr/bin/env bash
# tests/quickstart.sh: Bica for real, without Docker, in one command.
#
# With DB_HOST, DB_USER, DB_NAME (and DB_PASSWORD or DB_PASSWORD_FILE) set, it backs up that
# database into BACKUP_DIR (default ./backups) and runs the restore drill on the archive.
# With none set, it starts a throwaway PostgreSQL (pg_virtualenv), fills a sample database,
# makes an encrypted backup, restores it into a new database and compares the two.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n== %s\n' "$*"; }

if [ "${1:-}" != --inside ]; then
	need=()
	for pkg in postgresql-15 postgresql-common; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
	done
	if [ ${#need[@]} -gt 0 ]; then
		step "installing ${need[*]}"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	step "building the bica binaries (cargo build --release)"
	cargo build --release --locked --quiet
fi
export PATH="$root/target/release:$PATH"
export BACKUP_DIR=${BACKUP_DIR:-$root/backups}
mkdir -p "$BACKUP_DIR"

if [ "${1:-}" != --inside ] && [ -n "${DB_HOST:-}" ]; then
	step "backing up $DB_NAME on $DB_HOST into $BACKUP_DIR"
	"$root/entrypoint.sh" backup
	step "restore drill on the new archive"
	"$root/entrypoint.sh" verify --latest
	"$root/entrypoint.sh" list
	exit 0
fi

if [ "${1:-}" != --inside ]; then
	step "starting a throwaway PostgreSQL (pg_virtualenv)"
	exec pg_virtualenv -t "$0" --inside
fi

# Inside pg_virtualenv: PGHOST, PGPORT, PGUSER, PGPASSWORD point at the throwaway cluster.
step "creating a sample database 'shop'"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS shop' -c 'DROP DATABASE IF EXISTS shop_restored' -c 'CREATE DATABASE shop'
psql -X -q -v ON_ERROR_STOP=1 -d shop <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, joined timestamptz);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, total numeric(12, 2), items jsonb, note text);
INSERT INTO customers (name, email, joined)
  SELECT 'Customer ' || g || ' Zoë', 'c' || g || '@example.com', now() - g * interval '1 hour' FROM generate_series(1, 2000) g;
INSERT INTO orders (customer, total, items, note)
  SELECT 1 + g % 2000, (g % 997) * 1.25, jsonb_build_object('sku', md5(g::text), 'qty', g % 5), E'line\nbreak\t' || g
  FROM generate_series(1, 50000) g;
SQL

export DB_HOST=$PGHOST DB_PORT=$PGPORT DB_USER=$PGUSER DB_PASSWORD=$PGPASSWORD DB_NAME=shop
# The private key lives apart from the archives: whoever can read the backup directory (a backup
# copy of it, a disk sent off-site) must not find the key that opens them next to them.
keydir=${BICA_KEY_DIR:-$root/keys}
mkdir -p "$keydir"
chmod 0700 "$keydir"
key="$keydir/quickstart-key.txt"
if [ ! -f "$key" ]; then
	step "making an age key pair: $key (kept out of $BACKUP_DIR; in real use keep it off the server)"
	bica-seal --keygen "$key" >/dev/null
fi
ENCRYPT_RECIPIENTS=$(bica-seal --to-public "$key" 2>/dev/null || grep -m1 '^# public key: ' "$key" | cut -d' ' -f4)
export ENCRYPT_RECIPIENTS

step "backup: entrypoint.sh backup --prune"
"$root/entrypoint.sh" backup --prune

step "restore into a new database: entrypoint.sh restore --latest --into shop_restored"
ENCRYPT_IDENTITY_FILE=$key "$root/entrypoint.sh" restore --latest --into shop_restored

step "comparing shop and shop_restored"
compare() { pg_dump --no-owner --no-privileges -d "$1" | grep -v -E '^(--|\\restrict |\\unrestrict )'; }
if diff <(compare shop) <(compare shop_restored) >/dev/null; then
	echo "shop_restored is identical to shop ($(psql -X -Atc 'SELECT count(*) FROM orders' -d shop_restored) orders)."
else
	echo "shop_restored differs from shop" >&2
	exit 1
fi
"$root/entrypoint.sh" list
echo
echo "The archive is in $BACKUP_DIR; the throwaway cluster is removed now."
