#!/usr/bin/env bash
# entrypoint.sh: Bica's backup script and container entrypoint. It reads and checks the
# configuration, takes the lock, runs the pipeline and publishes atomically, orchestrates restore
# and verify, and execs supercronic; the binaries decide everything about data and formats
# (bica-state: status, metrics, health, catch-up, listing). Commands and variables: usage() below
# (`entrypoint.sh help`). Every path and setting comes from variables, so it runs the same outside
# a container with the bica binaries on PATH. Exit status: 0 success, 1 the operation failed,
# 2 the configuration is invalid, 3 another backup holds the lock.
set -euo pipefail
umask 077

readonly EXIT_FAILED=1 EXIT_CONFIG=2 EXIT_LOCKED=3
# The object stores' secrets in plain variables (their _FILE forms are paths, read by bica-remote).
readonly REMOTE_SECRET_VARS=(AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AZURE_STORAGE_ACCOUNT_KEY
	AZURE_STORAGE_SAS_TOKEN AZURE_STORAGE_SAS_KEY AZURE_CLIENT_SECRET GOOGLE_SERVICE_ACCOUNT_KEY)
declare -A REMOTE_SECRETS=()

say() { printf 'bica: %s\n' "$*" >&2; }
die() {
	local code=$1
	shift
	say "$*"
	exit "$code"
}

usage() {
	cat <<'EOF'
Usage: entrypoint.sh COMMAND [OPTIONS]

Commands:
  run               validate the configuration, run a missed backup, then schedule (default)
  backup [--prune]  make one archive now; --prune applies RETENTION_DAYS after a success
  prune [--dry-run] delete archives older than RETENTION_DAYS (never the newest KEEP_MIN)
  list [--json]     show the archives and what the next prune would delete
  restore ARCHIVE|URL|--latest [--remote] [--into DB] [--clean] [--with-globals] [--no-owner]
                    check, then restore into a new (or empty) database; all or nothing
  verify [ARCHIVE|--latest]
                    restore drill: restore into a scratch database, compare, drop it
  check             validate the configuration and print it (secrets redacted), and
                    name the server's version and the pg_dump that will dump it
  healthcheck       exit 0 if the newest good backup is recent enough, else 1
  help              this text

Variables (default):
  DB_HOST (postgres-db)  DB_PORT (5432)  DB_USER  DB_NAME  DB_PASSWORD | DB_PASSWORD_FILE
  BACKUP_DIR (/mnt/backups)  BACKUP_PREFIX (bica-backup)  RETENTION_DAYS (7)  KEEP_MIN (2)
  ENCRYPT (auto: on when a key is set)  ENCRYPT_RECIPIENTS | ENCRYPT_RECIPIENTS_FILE
  ENCRYPT_PASS | ENCRYPT_PASS_FILE  DB_WAIT (60)  DB_LOCK_WAIT_TIMEOUT (300)  DB_GLOBALS (true)
  PACK_LEVEL (pack default)  LOG_FILE (run: also append the log here)
  BICA_REQUIRE_ENCRYPTION (set by run for its jobs: they refuse to write plaintext)
  CATCH_UP (true)  CRONTAB (/etc/bica/crontab.txt)  HEALTH_MAX_AGE_HOURS (14)
  METRICS_FILE ($BACKUP_DIR/bica.prom, or off)  ON_SUCCESS_CMD  ON_FAILURE_CMD  HOOK_TIMEOUT (60)
  REMOTE_URL (s3://|gs://|az://BUCKET/PREFIX: also copy every archive there)  REMOTE_ENDPOINT
  REMOTE_ONLY (false: true streams archives to REMOTE_URL only)  REMOTE_RETENTION_DAYS
  (RETENTION_DAYS)  REMOTE_CATCH_UP_MAX (3)  + each service's credentials (see bica-remote(1))
  restore/verify: ENCRYPT_IDENTITY_FILE (age identity)  VERIFY_DB_HOST VERIFY_DB_PORT
  VERIFY_DB_USER VERIFY_DB_PASSWORD | VERIFY_DB_PASSWORD_FILE  VERIFY_SCHEDULE (cron, off)

Exit status: 0 success, 1 failed, 2 invalid configuration, 3 another backup is running.
EOF
}

# ---------------------------------------------------------------------------------------------
# Configuration

is_true() {
	case "${1,,}" in
	true | yes | 1 | on) return 0 ;;
	*) return 1 ;;
	esac
}

is_bool() {
	case "${1,,}" in
	true | yes | 1 | on | false | no | 0 | off) return 0 ;;
	*) return 1 ;;
	esac
}

# load_config [storage]: read every variable, check all of them, and print every problem at
# once. With "storage", only what prune, list and healthcheck need (no database, no keys).
load_config() {
	local scope=${1:-all}
	ENCRYPT_MODE=none
	SEAL_ARGS=()
	DB_HOST=${DB_HOST:-postgres-db}
	DB_PORT=${DB_PORT:-5432}
	DB_USER=${DB_USER:-${PGUSER:-}}
	DB_NAME=${DB_NAME:-${PGDATABASE:-}}
	BACKUP_DIR=${BACKUP_DIR:-/mnt/backups}
	BACKUP_PREFIX=${BACKUP_PREFIX:-bica-backup}
	RETENTION_DAYS=${RETENTION_DAYS:-7}
	KEEP_MIN=${KEEP_MIN:-2}
	DB_WAIT=${DB_WAIT:-60}
	DB_LOCK_WAIT_TIMEOUT=${DB_LOCK_WAIT_TIMEOUT:-300}
	DB_GLOBALS=${DB_GLOBALS:-true}
	CATCH_UP=${CATCH_UP:-true}
	CRONTAB=${CRONTAB:-/etc/bica/crontab.txt}
	HEALTH_MAX_AGE_HOURS=${HEALTH_MAX_AGE_HOURS:-14}
	ENCRYPT=${ENCRYPT:-}
	ENCRYPT_RECIPIENTS=${ENCRYPT_RECIPIENTS:-}
	ENCRYPT_RECIPIENTS_FILE=${ENCRYPT_RECIPIENTS_FILE:-}
	ENCRYPT_PASS_FILE=${ENCRYPT_PASS_FILE:-}
	DB_PASSWORD_FILE=${DB_PASSWORD_FILE:-}
	PACK_LEVEL=${PACK_LEVEL:-}
	REMOTE_URL=${REMOTE_URL:-}
	REMOTE_ONLY=${REMOTE_ONLY:-false}
	REMOTE_RETENTION_GIVEN=${REMOTE_RETENTION_DAYS:+yes}
	REMOTE_RETENTION_DAYS=${REMOTE_RETENTION_DAYS:-$RETENTION_DAYS}
	REMOTE_CATCH_UP_MAX=${REMOTE_CATCH_UP_MAX:-3}

	# Secrets stay in shell variables and reach only the one child that needs them, through
	# its environment: never argv, never every child.
	SECRET_DB_PASSWORD=${DB_PASSWORD:-}
	SECRET_ENCRYPT_PASS=${ENCRYPT_PASS:-}
	unset DB_PASSWORD ENCRYPT_PASS
	# The object stores' secrets likewise reach only bica-remote (see run_remote).
	local v
	for v in "${REMOTE_SECRET_VARS[@]}"; do
		if [ -n "${!v:-}" ]; then
			REMOTE_SECRETS[$v]=${!v}
			unset "$v"
		fi
	done

	local problems=()
	check_storage_config
	[ "$scope" = storage ] || check_backup_config
	if ((${#problems[@]} == 1)); then
		# One problem: one line, which the log of a scheduled run shows whole.
		say "${CONFIG_FAILURE_PREFIX:-}the configuration is invalid; nothing was done: ${problems[0]}"
		record_config_failure "${problems[0]}"
		exit "$EXIT_CONFIG"
	elif ((${#problems[@]})); then
		say "${CONFIG_FAILURE_PREFIX:-}the configuration is invalid; nothing was done:"
		local p
		for p in "${problems[@]}"; do
			printf '  - %s\n' "$p" >&2
		done
		local joined
		printf -v joined '%s; ' "${problems[@]}"
		record_config_failure "${joined%; }"
		exit "$EXIT_CONFIG"
	fi
}

# record_config_failure TEXT: a backup (scheduled or not) that cannot start is a failed backup:
# recorded in the status file and metrics, and the failure hook runs, so the healthcheck and
# monitoring see it. Only for backup runs (RECORD_CONFIG_FAILURE), and only where the status
# can be written.
record_config_failure() {
	[ -n "${RECORD_CONFIG_FAILURE:-}" ] && [ -d "$BACKUP_DIR" ] && [ -w "$BACKUP_DIR" ] || return 0
	record_backup failed "" 0 0 "the configuration is invalid: $1"
}

# config_encrypts: whether this configuration makes encrypted archives (the start-up's decision
# when the container's `run` made one, else ENCRYPT and the keys), for list and healthcheck.
config_encrypts() {
	[ -n "${BICA_REQUIRE_ENCRYPTION:-}" ] && return 0
	if [ -n "$ENCRYPT" ]; then
		is_true "$ENCRYPT"
		return
	fi
	[ -n "$ENCRYPT_RECIPIENTS$ENCRYPT_RECIPIENTS_FILE$SECRET_ENCRYPT_PASS$ENCRYPT_PASS_FILE" ]
}

# check_storage_config: appends to the caller's problems array.
check_storage_config() {
	# At most 36500 days (100 years, what bica-prune accepts): a typo such as 99999 must stop
	# the start, not fail every 03:00 prune after a good backup.
	[[ $RETENTION_DAYS =~ ^[0-9]{1,9}$ ]] && ((10#$RETENTION_DAYS >= 1 && 10#$RETENTION_DAYS <= 36500)) ||
		problems+=("RETENTION_DAYS='$RETENTION_DAYS' is not a whole number of days from 1 to 36500")
	[[ $KEEP_MIN =~ ^[0-9]+$ ]] && ((10#$KEEP_MIN >= 1)) ||
		problems+=("KEEP_MIN='$KEEP_MIN' is not a whole number, 1 or more")
	[[ $HEALTH_MAX_AGE_HOURS =~ ^[0-9]+$ ]] && ((10#$HEALTH_MAX_AGE_HOURS >= 1)) ||
		problems+=("HEALTH_MAX_AGE_HOURS='$HEALTH_MAX_AGE_HOURS' is not a whole number of hours, 1 or more")
	check_remote_config
	[[ $BACKUP_PREFIX =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]] ||
		problems+=("BACKUP_PREFIX='$BACKUP_PREFIX' may hold only letters, digits, '.', '_' and '-', and not start with '.' or '-'")
	if [ ! -d "$BACKUP_DIR" ]; then
		problems+=("BACKUP_DIR=$BACKUP_DIR does not exist or is not a directory")
	elif [ ! -w "$BACKUP_DIR" ] || [ ! -x "$BACKUP_DIR" ]; then
		problems+=("BACKUP_DIR=$BACKUP_DIR is not writable by user $(id -u)")
	fi
}

# check_remote_config: the off-site copy's settings (bica-remote checks the URL and the
# credentials itself, at its first request); appends to problems.
check_remote_config() {
	is_bool "$REMOTE_ONLY" || problems+=("REMOTE_ONLY='$REMOTE_ONLY' is not true or false")
	if is_true "$REMOTE_ONLY" && [ -z "$REMOTE_URL" ]; then
		problems+=("REMOTE_ONLY=$REMOTE_ONLY but REMOTE_URL is not set: where should the archives go?")
	fi
	[[ $REMOTE_URL =~ ^$|^(s3|gs|az)://[A-Za-z0-9._-]+(/.*)?$ ]] ||
		problems+=("REMOTE_URL='$REMOTE_URL' is not s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX")
	# Checked only when given: by default it is RETENTION_DAYS, which is checked already.
	[ -z "$REMOTE_RETENTION_GIVEN" ] ||
		{ [[ $REMOTE_RETENTION_DAYS =~ ^[0-9]{1,9}$ ]] && ((10#$REMOTE_RETENTION_DAYS >= 1 && 10#$REMOTE_RETENTION_DAYS <= 36500)); } ||
		problems+=("REMOTE_RETENTION_DAYS='$REMOTE_RETENTION_DAYS' is not a whole number of days from 1 to 36500")
	[[ $REMOTE_CATCH_UP_MAX =~ ^[0-9]{1,4}$ ]] ||
		problems+=("REMOTE_CATCH_UP_MAX='$REMOTE_CATCH_UP_MAX' is not a whole number")
}

remote_enabled() { [ -n "$REMOTE_URL" ]; }
remote_only() { remote_enabled && is_true "$REMOTE_ONLY"; }

# check_backup_config: the database, the schedule and the encryption; appends to problems.
check_backup_config() {
	[ -n "$DB_USER" ] || problems+=("DB_USER is not set: the database user to connect as")
	[ -n "$DB_NAME" ] || problems+=("DB_NAME is not set: the database to back up")
	[ -n "$DB_HOST" ] || problems+=("DB_HOST is empty")
	[[ $DB_PORT =~ ^[0-9]+$ ]] && ((10#$DB_PORT >= 1 && 10#$DB_PORT <= 65535)) ||
		problems+=("DB_PORT='$DB_PORT' is not a port number (1 to 65535)")
	if [ -n "$SECRET_DB_PASSWORD" ] && [ -n "$DB_PASSWORD_FILE" ]; then
		problems+=("DB_PASSWORD and DB_PASSWORD_FILE are both set: set only one")
	elif [ -n "$DB_PASSWORD_FILE" ] && ! [ -r "$DB_PASSWORD_FILE" ]; then
		problems+=("DB_PASSWORD_FILE=$DB_PASSWORD_FILE cannot be read")
	fi
	[[ $DB_WAIT =~ ^[0-9]+$ ]] || problems+=("DB_WAIT='$DB_WAIT' is not a whole number of seconds")
	[[ $DB_LOCK_WAIT_TIMEOUT =~ ^[0-9]{1,9}$ ]] ||
		problems+=("DB_LOCK_WAIT_TIMEOUT='$DB_LOCK_WAIT_TIMEOUT' is not a whole number of seconds (0 waits forever)")
	[ -z "$PACK_LEVEL" ] || [[ $PACK_LEVEL =~ ^[0-9]$ ]] ||
		problems+=("PACK_LEVEL='$PACK_LEVEL' is not a compression level from 0 to 9")
	is_bool "$DB_GLOBALS" || problems+=("DB_GLOBALS='$DB_GLOBALS' is not true or false")
	is_bool "$CATCH_UP" || problems+=("CATCH_UP='$CATCH_UP' is not true or false")

	# Encryption: unset means "when a key is given"; true means "must"; false means "never".
	local have_recipients=false have_pass=false
	if [ -n "$ENCRYPT_RECIPIENTS" ] || [ -n "$ENCRYPT_RECIPIENTS_FILE" ]; then
		have_recipients=true
	fi
	if [ -n "$SECRET_ENCRYPT_PASS" ] || [ -n "$ENCRYPT_PASS_FILE" ]; then
		have_pass=true
	fi
	if [ -n "$ENCRYPT_RECIPIENTS_FILE" ] && ! [ -r "$ENCRYPT_RECIPIENTS_FILE" ]; then
		problems+=("ENCRYPT_RECIPIENTS_FILE=$ENCRYPT_RECIPIENTS_FILE cannot be read")
	fi
	if [ -n "$SECRET_ENCRYPT_PASS" ] && [ -n "$ENCRYPT_PASS_FILE" ]; then
		problems+=("ENCRYPT_PASS and ENCRYPT_PASS_FILE are both set: set only one")
	elif [ -n "$ENCRYPT_PASS_FILE" ] && ! [ -r "$ENCRYPT_PASS_FILE" ]; then
		problems+=("ENCRYPT_PASS_FILE=$ENCRYPT_PASS_FILE cannot be read")
	fi
	if [ -n "$ENCRYPT" ] && ! is_bool "$ENCRYPT"; then
		problems+=("ENCRYPT='$ENCRYPT' is not true or false")
	elif [ -n "$ENCRYPT" ] && ! is_true "$ENCRYPT"; then
		if $have_recipients || $have_pass; then
			say "warning: ENCRYPT=$ENCRYPT: archives will NOT be encrypted although a key is configured"
		fi
	elif $have_recipients && $have_pass; then
		problems+=("both age recipients (ENCRYPT_RECIPIENTS*) and a passphrase (ENCRYPT_PASS*) are set: choose one (recipients are safer: this host then cannot read its own backups)")
	elif $have_recipients; then
		ENCRYPT_MODE=recipients
	elif $have_pass; then
		ENCRYPT_MODE=passphrase
	elif [ -n "$ENCRYPT" ]; then
		problems+=("ENCRYPT=$ENCRYPT but no key: set ENCRYPT_RECIPIENTS or ENCRYPT_RECIPIENTS_FILE (age public keys; make one with 'bica-seal --keygen key.txt'), or ENCRYPT_PASS / ENCRYPT_PASS_FILE")
	fi

	# The container's `run` decided at start-up to encrypt (BICA_REQUIRE_ENCRYPTION): a run of
	# that container without a usable key fails; it never falls back to plaintext because a
	# secret went missing (an unmounted file, a crontab line that overrides a variable).
	if [ "$ENCRYPT_MODE" = none ] && [ -n "${BICA_REQUIRE_ENCRYPTION:-}" ]; then
		problems+=("this container started with encryption ($BICA_REQUIRE_ENCRYPTION) but this run has no usable key (ENCRYPT='$ENCRYPT'; check ENCRYPT_RECIPIENTS*, ENCRYPT_PASS* and any mounted secret); refusing to write a plaintext archive")
	fi

	if [ "$ENCRYPT_MODE" = recipients ]; then
		local r
		for r in ${ENCRYPT_RECIPIENTS//,/ }; do
			SEAL_ARGS+=(-r "$r")
		done
		[ -z "$ENCRYPT_RECIPIENTS_FILE" ] || SEAL_ARGS+=(-R "$ENCRYPT_RECIPIENTS_FILE")
		# Let bica-seal judge the keys now, so a typo stops the start, not the 03:00 run.
		local err
		if ! err=$(bica-seal "${SEAL_ARGS[@]}" </dev/null 2>&1 >/dev/null); then
			problems+=("the age recipients are not usable: ${err//$'\n'/ }")
		fi
	elif [ "$ENCRYPT_MODE" = passphrase ]; then
		SEAL_ARGS=(-p)
		[ -z "$ENCRYPT_PASS_FILE" ] || SEAL_ARGS+=(--passphrase-file "$ENCRYPT_PASS_FILE")
	fi
}

print_config() {
	local pw=unset
	[ -z "$SECRET_DB_PASSWORD" ] || pw="set (redacted)"
	[ -z "$DB_PASSWORD_FILE" ] || pw="from $DB_PASSWORD_FILE"
	local enc=$ENCRYPT_MODE
	case $ENCRYPT_MODE in
	recipients) enc="age recipients (${ENCRYPT_RECIPIENTS:+ENCRYPT_RECIPIENTS}${ENCRYPT_RECIPIENTS_FILE:+ $ENCRYPT_RECIPIENTS_FILE})" ;;
	passphrase) enc="age passphrase (${ENCRYPT_PASS_FILE:-ENCRYPT_PASS}, redacted)" ;;
	none) enc="NONE: archives are not encrypted" ;;
	esac
	say "configuration:"
	printf '  %-15s %s\n' \
		database "$DB_USER@$DB_HOST:$DB_PORT/$DB_NAME" \
		password "$pw" \
		directory "$BACKUP_DIR" \
		names "$BACKUP_PREFIX-YYYY-MM-DD_HHMM$(archive_ext) (UTC)" \
		retention "$RETENTION_DAYS days, never fewer than the newest $KEEP_MIN" \
		encryption "$enc" \
		globals "$DB_GLOBALS" \
		catch-up "$CATCH_UP" \
		crontab "$CRONTAB" \
		remote "$(remote_summary)" >&2
}

# probe_server: at start-up, ask the server its version once and say which pg_dump will dump
# it (bica-dump decides). A server newer than every pg_dump here stops the start with exit 2,
# so `docker compose up` fails now instead of at 03:00; a server that cannot be reached (or
# refuses the login) is only a warning, since databases restart and every backup asks again.
probe_server() {
	local out rc=0 wait=$DB_WAIT
	((10#$wait <= 10)) || wait=10
	out=$(run_dump --client pg_dump --wait "$wait" 2>&1 >/dev/null) || rc=$?
	if ((rc == 0)); then
		say "$DB_HOST:$DB_PORT $(sed -n 's/^bica-dump: note: PostgreSQL \([^ ]*\) server: /runs PostgreSQL \1; backups use /p' <<<"$out" | tail -n 1)"
	elif ((rc == 4)); then
		say "${CONFIG_FAILURE_PREFIX:-}cannot back up $DB_HOST:$DB_PORT: $(dump_failure "$out")"
		exit "$EXIT_CONFIG"
	else
		say "warning: cannot ask $DB_HOST:$DB_PORT for its version at start-up ($(dump_failure "$out")); each backup asks again"
	fi
}

# dump_failure TEXT: bica-dump's error in TEXT (its stderr) and its hint, on one line.
dump_failure() {
	local err hint
	err=$(grep -E '^bica-dump: ' <<<"$1" | grep -v -E '^bica-dump: (waiting|note)' | tail -n 1 || true)
	hint=$(sed -n 's/^hint: //p' <<<"$1" | tail -n 1)
	printf '%s%s\n' "${err#bica-dump: }" "${hint:+; $hint}"
}

remote_summary() {
	if ! remote_enabled; then
		echo "none (set REMOTE_URL for off-site copies)"
	elif remote_only; then
		echo "$REMOTE_URL${REMOTE_ENDPOINT:+ via $REMOTE_ENDPOINT}, ONLY there (REMOTE_ONLY), retention $REMOTE_RETENTION_DAYS days"
	else
		echo "$REMOTE_URL${REMOTE_ENDPOINT:+ via $REMOTE_ENDPOINT}, after each local archive, retention $REMOTE_RETENTION_DAYS days"
	fi
}

archive_ext() {
	if [ "$ENCRYPT_MODE" = none ]; then echo .tar.gz; else echo .tar.gz.age; fi
}

# ---------------------------------------------------------------------------------------------
# Archives on disk

# archives: the names of our archives in BACKUP_DIR, one per line, oldest first (bica-state reads
# the names: PREFIX-YYYY-MM-DD_HHMM[-N].tar.gz[.age], UTC).
archives() { bica-state list --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --names; }

# sweep_partials: remove temporaries left by a run that was killed. Only called with the lock
# held, so no live run owns them.
sweep_partials() {
	local f
	for f in "$BACKUP_DIR"/."$BACKUP_PREFIX"-*.partial; do
		[ -f "$f" ] || [ -p "$f" ] || continue
		say "removing ${f##*/}, left by an interrupted run"
		rm -f -- "$f"
	done
}

# take_lock: one run at a time, through flock on a file in BACKUP_DIR (released when the
# process ends, however it ends).
take_lock() {
	local lock="$BACKUP_DIR/.bica.lock"
	if ! exec 9>>"$lock"; then
		die "$EXIT_FAILED" "cannot create the lock file $lock: is BACKUP_DIR writable by user $(id -u)?"
	fi
	if ! flock -n 9; then
		die "$EXIT_LOCKED" "another backup is running in $BACKUP_DIR (lock $lock held); not starting a second one"
	fi
}

# ---------------------------------------------------------------------------------------------
# Outcomes: bica-state records them (bica-status.json, bica.prom); the hooks run here

# notify EVENT RESULT ARCHIVE BYTES SECONDS ERROR: run ON_SUCCESS_CMD or ON_FAILURE_CMD with the
# result in its environment. A hook that fails or hangs (60 s) is logged, never fatal.
notify() {
	local event=$1 result=$2 archive=$3 bytes=$4 seconds=$5 error=$6 hook
	if [ "$result" = ok ]; then hook=${ON_SUCCESS_CMD:-}; else hook=${ON_FAILURE_CMD:-}; fi
	[ -n "$hook" ] || return 0
	if ! BICA_EVENT=$event BICA_RESULT=$result BICA_ARCHIVE=$archive BICA_BYTES=$bytes \
		BICA_SECONDS=$seconds BICA_ERROR=$error BICA_BACKUP_DIR=$BACKUP_DIR \
		timeout "${HOOK_TIMEOUT:-60}" sh -c "$hook" </dev/null; then
		say "warning: the ${result/ok/success}${result/failed/} hook failed"
	fi
}

# record_backup RESULT ARCHIVE BYTES SECONDS ERROR
record_backup() {
	bica-state record backup --dir "$BACKUP_DIR" --metrics-file "${METRICS_FILE:-}" --result "$1" \
		--started "${RUN_EPOCH:-$(date -u +%s)}" --archive "$2" --bytes "$3" --seconds "$4" --error "$5" ||
		say "warning: the outcome could not be recorded in $BACKUP_DIR"
	notify backup "$@"
}

# ---------------------------------------------------------------------------------------------
# backup

# first_error FILE: the error a bica tool printed: its last "bica-NAME: " line that is not
# progress or a note (details and hints come before and after it).
first_error() {
	grep -E '^bica-[a-z]+: ' "$1" 2>/dev/null | grep -v -E '^bica-dump: (waiting|note|pg_dump: |pg_dumpall: )' | tail -n 1 || true
}

# run_dump ARGS: bica-dump with the connection in its environment only. Exported inside a
# subshell that then execs, so no secret ever appears in any process's argv (`env VAR=...`
# would put it there).
run_dump() {
	# shellcheck disable=SC2030 # the subshell is the point: the password stays in it
	(
		export DB_HOST DB_PORT DB_USER DB_NAME
		[ -z "$SECRET_DB_PASSWORD" ] || export DB_PASSWORD="$SECRET_DB_PASSWORD"
		[ -z "$DB_PASSWORD_FILE" ] || export DB_PASSWORD_FILE
		exec bica-dump "$@"
	)
}

cmd_backup() {
	local prune=false
	while (($#)); do
		case $1 in
		--prune) prune=true ;;
		*) die "$EXIT_CONFIG" "backup: unknown option '$1' (expected --prune)" ;;
		esac
		shift
	done
	CONFIG_FAILURE_PREFIX="backup FAILED: " RECORD_CONFIG_FAILURE=1
	RUN_EPOCH=$(date -u +%s)
	load_config
	take_lock
	sweep_partials
	REMOTE_NAMES=""
	if remote_only; then
		# The archive goes straight to REMOTE_URL: the name must be free there, and the
		# service must answer before a byte is dumped.
		remote_prepare || {
			say "backup FAILED: $REMOTE_FAILURE; nothing was published"
			record_backup failed "" 0 0 "$REMOTE_FAILURE"
			record_remote failed "" "" "$REMOTE_FAILURE"
			exit "$EXIT_FAILED"
		}
	fi
	name_archive
	trap 'rm -rf -- "$TMP_ARCHIVE" "$TMP_GLOBALS" "$TMP_ERRDIR"' EXIT
	trap 'say "backup FAILED: interrupted by a signal; nothing was published, older archives are untouched"; exit 143' TERM INT HUP

	say "backup started: $NAME from $DB_USER@$DB_HOST:$DB_PORT/$DB_NAME"
	local start=$SECONDS
	FAILURE=""
	PACK_ARGS=(--meta "source=$DB_HOST:$DB_PORT/$DB_NAME" --meta "archive=$NAME")
	[ -z "$PACK_LEVEL" ] || PACK_ARGS+=(--level "$PACK_LEVEL")
	if is_true "$DB_GLOBALS"; then dump_globals; fi
	if [ -z "$FAILURE" ] && remote_only; then
		remote_only_pipeline
		[ -n "$FAILURE" ] || {
			remote_only_done "$start" "$prune"
			return 0
		}
	fi
	[ -n "$FAILURE" ] || run_pipeline
	[ -n "$FAILURE" ] || publish

	local seconds=$((SECONDS - start)) bytes
	if [ -n "$FAILURE" ]; then
		say "backup FAILED after ${seconds} s: $FAILURE; nothing was published, older archives are untouched"
		record_backup failed "" 0 "$seconds" "$FAILURE"
		! remote_only || record_remote failed "" "" "$FAILURE"
		exit "$EXIT_FAILED"
	fi
	bytes=$(stat -c %s -- "$BACKUP_DIR/$NAME")
	local client # bica-dump's note: "PostgreSQL 18.4 server: pg_dump 18.6 (PATH)"
	client=$(sed -n 's/^bica-dump: note: PostgreSQL \([^ ]*\) server: pg_dump \([^ ]*\) .*/pg_dump \2, PostgreSQL \1 server/p' "$TMP_ERRDIR/0" | tail -n 1)
	say "backup OK: $BACKUP_DIR/$NAME, $bytes bytes, ${seconds} s${client:+ ($client)}"
	record_backup ok "$NAME" "$bytes" "$seconds" ""
	local remote_ok=true
	if remote_enabled; then
		remote_publish "$NAME" || remote_ok=false
	fi
	if $prune; then
		run_prune --now "$(date -u -d "@$RUN_EPOCH" +%Y-%m-%dT%H:%M:00Z)" ||
			die "$EXIT_FAILED" "the backup succeeded but the prune failed (see above)"
		# Remote retention only after a good upload, like the local one after a good backup.
		if remote_enabled && $remote_ok; then
			remote_prune --now "$(date -u -d "@$RUN_EPOCH" +%Y-%m-%dT%H:%M:00Z)" ||
				die "$EXIT_FAILED" "the backup succeeded but the remote prune failed (see above)"
		fi
	fi
	$remote_ok || exit "$EXIT_FAILED"
}

# remote_only_pipeline: the pipeline writes into a FIFO (in BACKUP_DIR, which holds no archive
# then) that bica-remote streams into a multipart upload, 8 MiB at a time. The archive exists
# nowhere whole until the service completes the upload, which bica-remote does only once every
# stage has exited 0 and this script has written "commit". Sets FAILURE.
remote_only_pipeline() {
	mkfifo -m 600 -- "$TMP_ARCHIVE"
	run_remote put "$NAME" --commit-file "$TMP_ERRDIR/commit" <"$TMP_ARCHIVE" \
		>"$TMP_ERRDIR/sum" 2>"$TMP_ERRDIR/3" &
	local remote_pid=$! remote_status=0 verdict=abort
	run_pipeline
	[ -n "$FAILURE" ] || verdict=commit
	echo "$verdict" >"$TMP_ERRDIR/commit.tmp" && mv -f -- "$TMP_ERRDIR/commit.tmp" "$TMP_ERRDIR/commit"
	wait "$remote_pid" || remote_status=$?
	[ ! -s "$TMP_ERRDIR/3" ] || cat "$TMP_ERRDIR/3" >&2
	if ((remote_status != 0)); then
		# bica-remote's own reason, unless a stage failed for its own (then bica-remote only
		# aborted, as told).
		if [ -z "$FAILURE" ] || grep -q -i -E 'broken pipe|stopped early|SIGPIPE' <<<"$FAILURE"; then
			FAILURE=$(first_error "$TMP_ERRDIR/3")
			FAILURE=${FAILURE:-bica-remote: exited with status $remote_status}
		fi
	fi
}

# remote_only_done START PRUNE: records the published remote-only archive, then the retention.
remote_only_done() {
	local seconds=$((SECONDS - $1)) sum bytes
	sum=$(cut -d' ' -f1 <"$TMP_ERRDIR/sum")
	bytes=$(run_remote ls 2>/dev/null | awk -F '\t' -v n="$NAME" '$1 == n { print $2 }')
	say "backup OK: $(remote_url_of "$NAME"), ${bytes:-?} bytes, sha256 $sum, ${seconds} s (remote only)"
	record_backup ok "$NAME" "${bytes:-0}" "$seconds" ""
	record_remote ok "$NAME" "$sum" ""
	if $2; then
		remote_prune --now "$(date -u -d "@$RUN_EPOCH" +%Y-%m-%dT%H:%M:00Z)" ||
			die "$EXIT_FAILED" "the backup succeeded but the remote prune failed (see above)"
	fi
}

# name_archive: NAME from the run's UTC start minute (a second run in the same minute gets -2,
# -3, ...: never overwrite), and the temporaries TMP_ARCHIVE, TMP_GLOBALS, TMP_ERRDIR.
name_archive() {
	local stamp base n=1
	stamp=$(date -u -d "@$RUN_EPOCH" +%Y-%m-%d_%H%M)
	base="$BACKUP_PREFIX-$stamp"
	while [ -e "$BACKUP_DIR/$base.tar.gz" ] || [ -e "$BACKUP_DIR/$base.tar.gz.age" ] ||
		grep -q -x -F -e "$base.tar.gz" -e "$base.tar.gz.age" <<<"${REMOTE_NAMES:-}"; do
		n=$((n + 1))
		base="$BACKUP_PREFIX-$stamp-$n"
	done
	NAME=$base$(archive_ext)
	TMP_ARCHIVE="$BACKUP_DIR/.$NAME.partial"
	TMP_GLOBALS="$BACKUP_DIR/.$BACKUP_PREFIX-$stamp-globals.sql.partial"
	TMP_ERRDIR=$(mktemp -d "${TMPDIR:-/tmp}/bica.XXXXXX")
}

# dump_globals: the roles and tablespaces into TMP_GLOBALS, added to the archive; or FAILURE.
dump_globals() {
	if run_dump --globals --wait "$DB_WAIT" >"$TMP_GLOBALS" 2>"$TMP_ERRDIR/globals"; then
		PACK_ARGS+=(--add "globals.sql=$TMP_GLOBALS")
	else
		FAILURE="bica-dump --globals: $(first_error "$TMP_ERRDIR/globals")"
		FAILURE=${FAILURE%: }
	fi
	cat "$TMP_ERRDIR/globals" >&2
}

# seal: the pipeline's last stage, bica-seal with this configuration's keys (a passphrase only
# in its environment).
seal() {
	if [ "$ENCRYPT_MODE" = passphrase ] && [ -n "$SECRET_ENCRYPT_PASS" ]; then
		BICA_PASSPHRASE="$SECRET_ENCRYPT_PASS" exec bica-seal "${SEAL_ARGS[@]}"
	fi
	exec bica-seal "${SEAL_ARGS[@]}"
}

# run_pipeline: bica-dump | bica-pack [| bica-seal] > TMP_ARCHIVE. pipefail plus PIPESTATUS: any
# stage failing fails the run, so a dump that died cannot become a small, valid-looking
# archive. Shows each stage's messages; sets FAILURE to the root cause.
run_pipeline() {
	local e=$TMP_ERRDIR statuses i
	set +e
	if [ "$ENCRYPT_MODE" = none ]; then
		run_dump --wait "$DB_WAIT" --lock-wait-timeout "$DB_LOCK_WAIT_TIMEOUT" 2>"$e/0" |
			bica-pack "${PACK_ARGS[@]}" 2>"$e/1" >"$TMP_ARCHIVE"
		statuses=("${PIPESTATUS[@]}" 0)
	else
		run_dump --wait "$DB_WAIT" --lock-wait-timeout "$DB_LOCK_WAIT_TIMEOUT" 2>"$e/0" |
			bica-pack "${PACK_ARGS[@]}" 2>"$e/1" | seal 2>"$e/2" >"$TMP_ARCHIVE"
		statuses=("${PIPESTATUS[@]}")
	fi
	set -e
	for i in 0 1 2; do
		[ ! -s "$e/$i" ] || cat "$e/$i" >&2
	done
	FAILURE=$(root_cause "${statuses[@]}")
}

# root_cause STATUS...: the first stage that failed for its own reason (a stage that only saw
# its reader go away, a broken pipe, is a consequence); nothing when every stage succeeded.
root_cause() {
	local stages=(bica-dump bica-pack bica-seal) statuses=("$@") i msg fallback=""
	for i in 0 1 2; do
		((statuses[i] != 0)) || continue
		msg=$(first_error "$TMP_ERRDIR/$i")
		if [ -z "$msg" ] && ((statuses[i] > 128)); then
			# Killed without a word: name the signal (XFSZ: the file size limit, KILL: the
			# out-of-memory killer or a stop, ...).
			msg="${stages[i]}: killed by signal SIG$(kill -l "$((statuses[i] - 128))" 2>/dev/null || echo "$((statuses[i] - 128))")"
		fi
		[ -n "$msg" ] || msg="${stages[i]}: exited with status ${statuses[i]}"
		[ -n "$fallback" ] || fallback=$msg
		if ! grep -q -i -E 'broken pipe|stopped early|SIGPIPE' <<<"$msg"; then
			printf '%s' "$msg"
			return
		fi
	done
	printf '%s' "$fallback"
}

# publish: TMP_ARCHIVE must be what this run was configured to make; then durable before
# visible: fsync the data, link it under its final name (link fails rather than overwrite),
# drop the temporary name, fsync the directory. Or FAILURE.
publish() {
	local final="$BACKUP_DIR/$NAME"
	# Run as root, the archive gets the directory's owner (as bica-state's files do), so the
	# container's own user can still read, verify and prune it.
	if [ "$(id -u)" = 0 ] && ! chown --reference="$BACKUP_DIR" -- "$TMP_ARCHIVE"; then
		say "warning: cannot give $TMP_ARCHIVE the owner of $BACKUP_DIR"
	fi
	if ! archive_is_configured_kind "$TMP_ARCHIVE"; then
		if [ "$ENCRYPT_MODE" = none ]; then
			FAILURE="the archive is not a gzip file; refusing to publish it"
		else
			FAILURE="the archive is not an age file although encryption is configured ($ENCRYPT_MODE); refusing to publish it"
		fi
	elif ! sync -- "$TMP_ARCHIVE"; then
		FAILURE="cannot flush $TMP_ARCHIVE to disk"
	elif ! ln -- "$TMP_ARCHIVE" "$final" 2>/dev/null && ! { [ ! -e "$final" ] && mv -T -- "$TMP_ARCHIVE" "$final"; }; then
		FAILURE="cannot publish $final"
	else
		rm -f -- "$TMP_ARCHIVE"
		sync -- "$BACKUP_DIR" || say "warning: cannot fsync $BACKUP_DIR"
	fi
}

# ---------------------------------------------------------------------------------------------
# The off-site copy (bica-remote): REMOTE_URL, after the local publish or instead of it

remote_url_of() { printf '%s/%s' "${REMOTE_URL%/}" "$1"; }

# run_remote ARGS: bica-remote with the object store's secrets in its environment only, exported
# in a subshell that then execs (never argv, never the other children).
run_remote() {
	(
		local v
		for v in "${!REMOTE_SECRETS[@]}"; do
			export "$v=${REMOTE_SECRETS[$v]}"
		done
		exec bica-remote "$@"
	)
}

# remote_archives: our archive names at REMOTE_URL, oldest first (the order of `archives`).
remote_archives() {
	local re="^${BACKUP_PREFIX//./\\.}-([0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{4})(-([0-9]+))?\\.tar\\.gz(\\.age)?$"
	local name rest
	run_remote ls | while IFS=$'\t' read -r name rest; do
		if [[ $name =~ $re ]]; then
			printf '%s %s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[3]:-1}" "$name"
		fi
	done | sort -k1,1 -k2,2n | cut -d' ' -f3-
}

# remote_prepare: aborts the uploads a killed run left (clean) and lists what is there into
# REMOTE_NAMES; on failure sets REMOTE_FAILURE to bica-remote's one line.
remote_prepare() {
	local err out
	err=$(mktemp "${TMPDIR:-/tmp}/bica-remote.XXXXXX")
	if ! run_remote clean >/dev/null 2>"$err" || ! out=$(run_remote ls 2>"$err"); then
		cat "$err" >&2
		REMOTE_FAILURE=$(grep -E '^bica-remote: ' "$err" | tail -n 1)
		REMOTE_FAILURE=${REMOTE_FAILURE:-bica-remote failed}
		rm -f -- "$err"
		return 1
	fi
	rm -f -- "$err"
	REMOTE_NAMES=$(cut -f1 <<<"$out")
}

# remote_publish NAME: copies the new archive to REMOTE_URL, then the archives that exist here
# but not there (newest first, at most REMOTE_CATCH_UP_MAX); records the result. A failure is
# loud (summary line, status, metrics, hook, health) and never touches the local archives.
remote_publish() {
	local name=$1 start=$SECONDS out err="$TMP_ERRDIR/remote"
	if ! remote_prepare; then
		remote_failed "$name" "$REMOTE_FAILURE" "$start"
		return 1
	fi
	if ! out=$(run_remote put "$name" "$BACKUP_DIR/$name" 2>"$err"); then
		cat "$err" >&2
		remote_failed "$name" "$(grep -E '^bica-remote: ' "$err" | tail -n 1)" "$start"
		return 1
	fi
	local sum=${out%% *}
	say "remote copy OK: $(remote_url_of "$name"), sha256 $sum (the local archive's), $((SECONDS - start)) s"
	record_remote ok "$name" "$sum" ""
	# Catch up: what earlier runs could not copy, newest first, bounded per run.
	local missing=() m copied=0
	mapfile -t missing < <(archives | tac | grep -v -x -F -e "$name" -e "${REMOTE_NAMES:-}" || true)
	for m in "${missing[@]}"; do
		[ -n "$m" ] || continue
		((copied < 10#$REMOTE_CATCH_UP_MAX)) || {
			say "remote catch-up: more archives are missing at $REMOTE_URL; the next runs copy them ($REMOTE_CATCH_UP_MAX per run)"
			break
		}
		if out=$(run_remote put "$m" "$BACKUP_DIR/$m" 2>"$err"); then
			say "remote catch-up: copied $m, sha256 ${out%% *}"
			copied=$((copied + 1))
		else
			cat "$err" >&2
			remote_failed "$m" "$(grep -E '^bica-remote: ' "$err" | tail -n 1)" "$start"
			return 1
		fi
	done
}

remote_failed() {
	local name=$1 why=${2:-bica-remote failed} start=$3
	say "remote copy FAILED after $((SECONDS - start)) s: ${why#bica-remote: }; the local archive $name is intact; the next run copies what is missing"
	record_remote failed "$name" "" "$why"
	notify remote failed "$name" 0 "$((SECONDS - start))" "$why"
}

# remote_prune ARGS: bica-prune's retention at REMOTE_URL (REMOTE_RETENTION_DAYS, KEEP_MIN).
remote_prune() {
	run_remote prune --prefix "$BACKUP_PREFIX" --keep-days "$REMOTE_RETENTION_DAYS" \
		--keep-min "$KEEP_MIN" "$@"
}

# record_remote RESULT ARCHIVE SHA256 ERROR: bica-state records the copy (status, metrics).
record_remote() {
	bica-state record remote --dir "$BACKUP_DIR" --metrics-file "${METRICS_FILE:-}" --result "$1" \
		--started "${RUN_EPOCH:-$(date -u +%s)}" --archive "$2" --sha256 "$3" --error "$4" ||
		say "warning: the remote outcome could not be recorded in $BACKUP_DIR"
}

# archive_is_configured_kind FILE: FILE starts as what this run was configured to produce: an
# age file when encrypting, a gzip stream otherwise. The last check before publishing.
archive_is_configured_kind() {
	if [ "$ENCRYPT_MODE" = none ]; then
		[ "$(od -A n -N 2 -t x1 -- "$1" 2>/dev/null | tr -d ' \n')" = 1f8b ]
	else
		[ "$(head -c 22 -- "$1" 2>/dev/null | od -A n -t x1 | tr -d ' \n')" = 6167652d656e6372797074696f6e2e6f72672f76310a ]
	fi
}

# ---------------------------------------------------------------------------------------------
# prune, list, check, healthcheck

run_prune() {
	bica-prune --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" \
		--keep-days "$RETENTION_DAYS" --keep-min "$KEEP_MIN" "$@"
}

cmd_prune() {
	local args=()
	while (($#)); do
		case $1 in
		--dry-run) args+=(--dry-run) ;;
		*) die "$EXIT_CONFIG" "prune: unknown option '$1' (expected --dry-run)" ;;
		esac
		shift
	done
	load_config storage
	if [ ${#args[@]} -eq 0 ]; then
		take_lock
	fi
	run_prune "${args[@]}"
}

# cmd_list [--json]: the archives (bica-state) and what a prune would do now.
cmd_list() {
	load_config storage
	local args=()
	! config_encrypts || args+=(--encrypted)
	if [ "${1:-}" = --json ]; then
		exec bica-state list --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" "${args[@]}" --json
	fi
	[ $# -eq 0 ] || die "$EXIT_CONFIG" "list: unknown option '$1' (expected --json)"
	bica-state list --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" "${args[@]}"
	echo
	echo "What a prune would do now (RETENTION_DAYS=$RETENTION_DAYS, KEEP_MIN=$KEEP_MIN):"
	run_prune --dry-run
	remote_enabled || return 0
	list_remote
}

# list_remote: the local and the remote copies side by side, each with its SHA-256, then what a
# remote prune would do.
list_remote() {
	echo
	echo "Copies here and at $REMOTE_URL:"
	local listing name sum
	if ! listing=$(run_remote ls); then
		echo "  (cannot list $REMOTE_URL: see above)"
		return 1
	fi
	declare -A rsum=()
	while IFS=$'\t' read -r name _ sum _; do
		[ -n "$name" ] && rsum[$name]=$sum
	done <<<"$listing"
	printf '%-48s %-64s  %-64s  %s\n' ARCHIVE "LOCAL SHA-256" "REMOTE SHA-256" STATE
	local all state lsum
	all=$({
		archives
		remote_archives
	} | sort -u)
	while IFS= read -r name; do
		[ -n "$name" ] || continue
		lsum=-
		[ -f "$BACKUP_DIR/$name" ] && lsum=$(sha256sum -- "$BACKUP_DIR/$name" | cut -d' ' -f1)
		sum=${rsum[$name]:--}
		if [ "$lsum" = - ]; then
			state="remote only"
		elif [ "$sum" = - ]; then
			state="NOT COPIED (the next backup copies it)"
		elif [ "$sum" = "$lsum" ]; then
			state=same
		else
			state="DIFFERENT (!)"
		fi
		printf '%-48s %-64s  %-64s  %s\n' "$name" "$lsum" "$sum" "$state"
	done <<<"$all"
	echo
	echo "What a remote prune would do now (REMOTE_RETENTION_DAYS=$REMOTE_RETENTION_DAYS, KEEP_MIN=$KEEP_MIN):"
	remote_prune --dry-run
}


cmd_check() {
	load_config
	print_config
	probe_server
	say "configuration OK"
}

# cmd_healthcheck: bica-state's verdict on the newest good backup (exit 0 healthy, 1 not).
cmd_healthcheck() {
	load_config storage
	local args=()
	! config_encrypts || args+=(--encrypted)
	! remote_enabled || args+=(--remote)
	! remote_only || args+=(--remote-only)
	exec bica-state health --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" \
		--max-age-hours "$((10#$HEALTH_MAX_AGE_HOURS))" "${args[@]}"
}

# ---------------------------------------------------------------------------------------------
# restore and verify: bica-restore checks, decrypts, restores, compares and records (see
# bica-restore(1)); this script hands it the configuration.

# run_restore ARGS: execs bica-restore with the configuration in its environment, the secrets
# load_config took out of ours included: they reach bica-restore (which keeps them from its
# children, but for the database password as PGPASSWORD), never argv. exec, so that a stop
# (SIGTERM) reaches it, and it drops what it created.
run_restore() {
	export BACKUP_DIR BACKUP_PREFIX DB_HOST DB_PORT DB_USER DB_NAME REMOTE_URL
	# shellcheck disable=SC2031 # run_dump's subshell export is another process's; this one is ours
	[ -z "$SECRET_DB_PASSWORD" ] || export DB_PASSWORD="$SECRET_DB_PASSWORD"
	[ -z "$SECRET_ENCRYPT_PASS" ] || export BICA_PASSPHRASE="$SECRET_ENCRYPT_PASS"
	local v
	for v in "${!REMOTE_SECRETS[@]}"; do
		export "$v=${REMOTE_SECRETS[$v]}"
	done
	exec bica-restore "$@"
}

# cmd_restore ARCHIVE|URL|--latest [--remote] [--into DB] [--clean] [--with-globals] [--no-owner]
cmd_restore() {
	load_config storage
	local args=()
	! remote_only || args+=(--remote) # --latest means the newest at REMOTE_URL
	run_restore restore "$@" "${args[@]}"
}

# cmd_verify [ARCHIVE|--latest]: the drill, recorded in BACKUP_DIR (status, metrics, hooks).
cmd_verify() {
	load_config storage
	[ $# -gt 0 ] || set -- --latest
	local args=(--record "$BACKUP_DIR")
	! remote_only || args+=(--remote)
	run_restore verify "$@" "${args[@]}"
}

# ---------------------------------------------------------------------------------------------
# run: the container's default command

# catch_up: one backup now when the newest slot of a backup line of the crontab was missed.
# bica-state decides, from the crontab as supercronic reads it (any schedule, CRON_TZ), and says
# why; a failed catch-up is logged and recorded, and the schedule still starts.
catch_up() {
	local action
	if ! action=$(bica-state catch-up --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --crontab "$CRONTAB"); then
		say "catch-up skipped: no decision (above); the schedule starts anyway"
		return 0
	fi
	case $action in
	backup) "$0" backup || say "catch-up backup failed; the schedule continues" ;;
	"backup --prune") "$0" backup --prune || say "catch-up backup failed; the schedule continues" ;;
	esac
}

# export_for_jobs: the catch-up and every scheduled job are new processes that read the
# configuration again from their environment. load_config took the plain secrets out of this
# process's environment (so that no other child sees them); put them back for those jobs, as
# they were given (a plain variable stays a variable, a _FILE stays a path), and pass on the
# start-up's decision to encrypt, which every job then holds to.
export_for_jobs() {
	# shellcheck disable=SC2031 # run_dump's subshell export is another process's; this one is ours
	[ -z "$SECRET_DB_PASSWORD" ] || export DB_PASSWORD="$SECRET_DB_PASSWORD"
	[ -z "$SECRET_ENCRYPT_PASS" ] || export ENCRYPT_PASS="$SECRET_ENCRYPT_PASS"
	[ "$ENCRYPT_MODE" = none ] || export BICA_REQUIRE_ENCRYPTION=$ENCRYPT_MODE
	local v
	for v in "${!REMOTE_SECRETS[@]}"; do
		export "$v=${REMOTE_SECRETS[$v]}"
	done
}

cmd_run() {
	load_config
	if [ -n "${LOG_FILE:-}" ]; then
		# Everything from here on (the catch-up, supercronic and every job it starts) also goes
		# to LOG_FILE; stdout and stderr stay what `docker logs` shows.
		{ : >>"$LOG_FILE"; } 2>/dev/null || die "$EXIT_CONFIG" "LOG_FILE=$LOG_FILE cannot be written by user $(id -u)"
		exec > >(tee -a -- "$LOG_FILE") 2> >(tee -a -- "$LOG_FILE" >&2)
	fi
	print_config
	probe_server
	if [ "${container:-}" = podman ]; then
		# podman sets container=podman; it cannot tell us the image's format, so say it once.
		say "note: under podman the image has its HEALTHCHECK only when built with 'podman build --format docker' (the default OCI format drops it)"
	fi
	[ -r "$CRONTAB" ] || die "$EXIT_CONFIG" "the crontab $CRONTAB cannot be read"
	if remote_enabled; then
		# Say at start, not at 03:00, when the object store refuses us; the runs still retry
		# (a network that is down now may be up by then).
		local remote_err
		if remote_err=$(run_remote ls 2>&1 >/dev/null); then
			say "remote: $REMOTE_URL answers"
		else
			say "warning: $REMOTE_URL does not answer now; every run will retry the copy: ${remote_err//$'\n'/ }"
		fi
	fi
	(
		take_lock
		sweep_partials
	)
	export_for_jobs
	if is_true "$CATCH_UP"; then
		# A stop (SIGTERM) during the catch-up lets that backup finish, like supercronic does
		# for scheduled runs, then exits instead of starting the schedule.
		local stop_requested=false
		trap 'stop_requested=true' TERM INT
		catch_up
		trap - TERM INT
		if $stop_requested; then
			say "stop requested during the catch-up backup; exiting"
			exit 0
		fi
	fi
	local crontab=$CRONTAB
	if [ -n "${VERIFY_SCHEDULE:-}" ]; then
		# The restore drill needs the identity; it is off unless asked for (see README).
		crontab="${TMPDIR:-/tmp}/bica-crontab.txt"
		{
			cat -- "$CRONTAB"
			printf '\n# added by entrypoint.sh from VERIFY_SCHEDULE\n%s entrypoint.sh verify --latest\n' "$VERIFY_SCHEDULE"
		} >"$crontab"
		say "restore drill scheduled: $VERIFY_SCHEDULE (UTC)"
	fi
	say "starting the schedule from $crontab"
	exec supercronic -passthrough-logs "$crontab"
}

main() {
	local cmd=${1:-run}
	[ $# -eq 0 ] || shift
	case $cmd in
	run) cmd_run "$@" ;;
	backup) cmd_backup "$@" ;;
	prune) cmd_prune "$@" ;;
	list) cmd_list "$@" ;;
	check) cmd_check "$@" ;;
	healthcheck) cmd_healthcheck "$@" ;;
	restore) cmd_restore "$@" ;;
	verify) cmd_verify "$@" ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		die "$EXIT_CONFIG" "unknown command '$cmd'"
		;;
	esac
}

main "$@"
