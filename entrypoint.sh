#!/usr/bin/env bash
# entrypoint.sh: Bica's backup script and container entrypoint. It wires the binaries, which
# decide everything about settings, data and formats (bica-config: the configuration;
# bica-state: status, metrics, health, catch-up, listing): it takes the lock, runs the pipeline
# and publishes atomically, orchestrates restore and verify, and execs supercronic. Commands and
# variables: usage() below, README.md, bica-config(1); every path and setting comes from
# variables, so it runs the same outside a container with the bica binaries on PATH.
# shellcheck disable=SC2153 # the settings come from load_config's eval, which shellcheck cannot see
set -euo pipefail
umask 077

readonly EXIT_FAILED=1 EXIT_CONFIG=2 EXIT_LOCKED=3
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

Variables (default; each one's meaning: README.md, Variables; the checks: bica-config(1)):
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
# Configuration: bica-config decides; the shell keeps the secrets

# load_config [storage]: every setting from bica-config (assignments it quoted for eval, no
# secret among them), every problem at once. With "storage", only what prune, list and
# healthcheck need (no database, no keys).
load_config() {
	local out rc=0 v CONFIG_WARNINGS=() CONFIG_PROBLEMS=() REMOTE_SECRET_NAMES=()
	out=$(bica-config --scope "${1:-all}") || rc=$?
	eval "$out"
	((rc == 0 || ${#CONFIG_PROBLEMS[@]})) || die "$EXIT_FAILED" "bica-config failed (exit status $rc); nothing was done"
	for v in "${CONFIG_WARNINGS[@]}"; do say "warning: $v"; done
	# Secrets stay in shell variables and reach only the one child that needs them, through
	# its environment: never argv, never every child (the object stores' only bica-remote).
	SECRET_DB_PASSWORD=${DB_PASSWORD:-}
	SECRET_ENCRYPT_PASS=${ENCRYPT_PASS:-}
	unset DB_PASSWORD ENCRYPT_PASS
	for v in "${REMOTE_SECRET_NAMES[@]}"; do
		REMOTE_SECRETS[$v]=${!v}
		unset "$v"
	done
	((${#CONFIG_PROBLEMS[@]} == 0)) || config_failed "${CONFIG_PROBLEMS[@]}"
}

# config_failed PROBLEM...: one problem on one line (which the log of a scheduled run shows
# whole), several as a list; exit 2. A backup (RECORD_CONFIG_FAILURE) that cannot start is a
# failed backup, recorded where the status can be written (status file, metrics, failure hook),
# so the healthcheck and monitoring see it.
config_failed() {
	local head="${CONFIG_FAILURE_PREFIX:-}the configuration is invalid; nothing was done:" joined
	printf -v joined '%s; ' "$@"
	if (($# == 1)); then
		say "$head $1"
	else
		say "$head"
		printf '  - %s\n' "$@" >&2
	fi
	if [ -n "${RECORD_CONFIG_FAILURE:-}" ] && [ -d "$BACKUP_DIR" ] && [ -w "$BACKUP_DIR" ]; then
		record_backup failed "" 0 0 "the configuration is invalid: ${joined%; }"
	fi
	exit "$EXIT_CONFIG"
}

# What the settings mean, for the commands (bica-config printed every boolean as true or false).
is_true() { [ "$1" = true ]; }
config_encrypts() { [ "$ENCRYPTS" = true ]; }
remote_enabled() { [ -n "$REMOTE_URL" ]; }
remote_only() { remote_enabled && is_true "$REMOTE_ONLY"; }

print_config() {
	say "configuration:"
	printf '%s\n' "$CONFIG_SUMMARY" >&2
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

# ---------------------------------------------------------------------------------------------
# Archives on disk, the lock, the outcomes (bica-state records them, runs the hooks) and backup:
# each stage's messages go to TMP_ERRDIR/STAGE; bica-state names, publishes and finds the cause

# archives: our archive names in BACKUP_DIR, oldest first (bica-state reads the names).
archives() { bica-state list --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --names; }

# sweep_partials: removes what killed runs left (.PREFIX-*.partial); only with the lock held.
sweep_partials() { bica-state sweep --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX"; }

# take_lock: one run at a time: flock on a file in BACKUP_DIR, released when the process ends.
take_lock() {
	local lock="$BACKUP_DIR/.bica.lock"
	exec 9>>"$lock" || die "$EXIT_FAILED" "cannot create the lock file $lock: is BACKUP_DIR writable by user $(id -u)?"
	flock -n 9 || die "$EXIT_LOCKED" "another backup is running in $BACKUP_DIR (lock $lock held); not starting a second one"
}

# record KIND OPTIONS: bica-state records an outcome (status, metrics; --hooks: then the hook runs).
record() {
	bica-state record "$1" --dir "$BACKUP_DIR" --metrics-file "${METRICS_FILE:-}" "${@:2}" ||
		say "warning: the $1 outcome could not be recorded in $BACKUP_DIR"
}

# record_backup RESULT ARCHIVE BYTES SECONDS ERROR
record_backup() { record backup --hooks --started "${RUN_EPOCH:-$(date -u +%s)}" --result "$1" --archive "$2" --bytes "$3" --seconds "$4" --error "$5"; }

# record_remote RESULT ARCHIVE SHA256 ERROR [OPTIONS]: the off-site copy's outcome.
record_remote() { record remote --started "${RUN_EPOCH:-$(date -u +%s)}" --result "$1" --archive "$2" --sha256 "$3" --error "$4" "${@:5}"; }

# run_dump ARGS: bica-dump with the connection in its environment only, exported in a subshell
# that then execs, so no secret is ever in any process's argv (`env VAR=...` would put it there).
run_dump() {
	# shellcheck disable=SC2030 # the subshell is the point: the password stays in it
	(
		export DB_HOST DB_PORT DB_USER DB_NAME
		[ -z "$SECRET_DB_PASSWORD" ] || export DB_PASSWORD="$SECRET_DB_PASSWORD"
		[ -z "$DB_PASSWORD_FILE" ] || export DB_PASSWORD_FILE
		exec bica-dump "$@"
	)
}

# cmd_backup [--prune]: the archive (or remote-only's upload), its copy, and after success only, the retention.
cmd_backup() {
	local a prune=false remote_ok=true
	for a in "$@"; do
		[ "$a" = --prune ] || die "$EXIT_CONFIG" "backup: unknown option '$a' (expected --prune)"
		prune=true
	done
	CONFIG_FAILURE_PREFIX="backup FAILED: " RECORD_CONFIG_FAILURE=1 RUN_EPOCH=$(date -u +%s)
	load_config
	take_lock
	sweep_partials
	start_run
	if is_true "$DB_GLOBALS"; then dump_globals; fi
	if remote_only; then
		remote_only_pipeline
	else
		run_pipeline
		publish
		! remote_enabled || remote_publish || remote_ok=false
	fi
	! $prune || retention "$remote_ok"
	$remote_ok || exit "$EXIT_FAILED"
}

# start_run: the temporaries (removed however the run ends), and NAME from the run's UTC start
# minute, -2, -3, ... when taken here or (remote-only: it must answer first) at REMOTE_URL.
start_run() {
	START=$SECONDS TMP_ARCHIVE="" TMP_GLOBALS="" KIND=() TAKEN=/dev/null
	TMP_ERRDIR=$(mktemp -d "${TMPDIR:-/tmp}/bica.XXXXXX")
	trap 'rm -rf -- "$TMP_ARCHIVE" "$TMP_GLOBALS" "$TMP_ERRDIR"' EXIT
	[ "$ENCRYPT_MODE" = none ] || KIND=(--encrypted)
	if remote_only; then
		TAKEN=$TMP_ERRDIR/taken
		remote_prepare "$TAKEN" || backup_failed "$STEP_FAILURE"
	fi
	NAME=$(bica-state name --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --started "$RUN_EPOCH" \
		"${KIND[@]}" --taken "$TAKEN") || backup_failed "cannot name the archive (above)"
	TMP_ARCHIVE="$BACKUP_DIR/.$NAME.partial" TMP_GLOBALS="$BACKUP_DIR/.${NAME%%.tar.gz*}-globals.sql.partial"
	PACK_ARGS=(--meta "source=$DB_HOST:$DB_PORT/$DB_NAME" --meta "archive=$NAME" ${PACK_LEVEL:+--level "$PACK_LEVEL"})
	trap 'say "backup FAILED: interrupted by a signal; nothing was published, older archives are untouched"; exit 143' TERM INT HUP
	say "backup started: $NAME from $DB_USER@$DB_HOST:$DB_PORT/$DB_NAME"
}

# backup_failed WHY: the one summary line and the records; exit 1 (the trap removes temporaries).
backup_failed() {
	say "backup FAILED after $((SECONDS - START)) s: $1; nothing was published, older archives are untouched"
	record_backup failed "" 0 "$((SECONDS - START))" "$1"
	! remote_only || record_remote failed "" "" "$1"
	exit "$EXIT_FAILED"
}

# dump_globals: the roles and tablespaces into TMP_GLOBALS, added to the archive.
dump_globals() {
	step bica-dump run_dump --globals --wait "$DB_WAIT" >"$TMP_GLOBALS" || backup_failed "bica-dump --globals: $STEP_FAILURE"
	PACK_ARGS+=(--add "globals.sql=$TMP_GLOBALS")
}

# seal: bica-seal with this configuration's keys (a passphrase only in its pipeline subshell's environment).
seal() {
	[ "$ENCRYPT_MODE" != passphrase ] || [ -z "$SECRET_ENCRYPT_PASS" ] || export BICA_PASSPHRASE="$SECRET_ENCRYPT_PASS"
	exec bica-seal "${SEAL_ARGS[@]}"
}

# run_pipeline: bica-dump | bica-pack [| bica-seal] > TMP_ARCHIVE (file or FIFO); every stage's
# status into STAGES, so that a dump that died cannot become a small, valid-looking archive.
run_pipeline() {
	local e=$TMP_ERRDIR dump=(--wait "$DB_WAIT" --lock-wait-timeout "$DB_LOCK_WAIT_TIMEOUT") s
	set +e
	if [ "$ENCRYPT_MODE" = none ]; then
		run_dump "${dump[@]}" 2>"$e/bica-dump" | bica-pack "${PACK_ARGS[@]}" 2>"$e/bica-pack" >"$TMP_ARCHIVE"
		s=("${PIPESTATUS[@]}" 0)
	else
		run_dump "${dump[@]}" 2>"$e/bica-dump" | bica-pack "${PACK_ARGS[@]}" 2>"$e/bica-pack" | seal 2>"$e/bica-seal" >"$TMP_ARCHIVE"
		s=("${PIPESTATUS[@]}")
	fi
	set -e
	STAGES=("bica-dump:${s[0]}" "bica-pack:${s[1]}" "bica-seal:${s[2]}")
}

# publish: unless a stage failed, bica-state checks the archive's kind, fsyncs it and links it
# under NAME (never over a file); then the summary line and the record.
publish() {
	local bytes
	if ! FAILURE=$(stage_failure --show "${STAGES[@]}") || [ -n "$FAILURE" ]; then backup_failed "$FAILURE"; fi
	step bica-state bica-state publish --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --temp "$TMP_ARCHIVE" \
		--name "$NAME" "${KIND[@]}" >"$TMP_ERRDIR/bytes" || backup_failed "$STEP_FAILURE"
	bytes=$(<"$TMP_ERRDIR/bytes")
	say "backup OK: $BACKUP_DIR/$NAME, $bytes bytes, $((SECONDS - START)) s$(dump_client)"
	record_backup ok "$NAME" "$bytes" "$((SECONDS - START))" ""
}

# dump_client: " (pg_dump 18.6, PostgreSQL 18.4 server)", from bica-dump's note.
dump_client() { sed -n 's/^bica-dump: note: PostgreSQL \([^ ]*\) server: pg_dump \([^ ]*\) .*/ (pg_dump \2, PostgreSQL \1 server)/p' "$TMP_ERRDIR/bica-dump" | tail -n 1; }

# step STAGE CMD ARGS: CMD, its messages shown after it; STEP_FAILURE: its error when it failed.
step() {
	local st=0
	"${@:2}" 2>"$TMP_ERRDIR/$1" || st=$?
	STEP_FAILURE=$(stage_failure --show "$1:$st")
	return "$st"
}

# stage_failure [--show] NAME:STATUS...: the error of the first stage that failed for its own reason.
stage_failure() { bica-state cause --messages "$TMP_ERRDIR" "$@"; }

# retention REMOTE_OK: the local retention (not remote-only), the remote one after a good upload.
retention() {
	local now
	now=$(date -u -d "@$RUN_EPOCH" +%Y-%m-%dT%H:%M:00Z)
	remote_only || run_prune --now "$now" || die "$EXIT_FAILED" "the backup succeeded but the prune failed (see above)"
	! remote_enabled || ! $1 || remote_prune --now "$now" || die "$EXIT_FAILED" "the backup succeeded but the remote prune failed (see above)"
}

# ---------------------------------------------------------------------------------------------
# The off-site copy (bica-remote): REMOTE_URL, after the local publish or instead of it

remote_url_of() { printf '%s/%s' "${REMOTE_URL%/}" "$1"; }

# run_remote ARGS: bica-remote with the object store's secrets in its environment only (never argv).
run_remote() {
	(
		for v in "${!REMOTE_SECRETS[@]}"; do export "$v=${REMOTE_SECRETS[$v]}"; done
		exec bica-remote "$@"
	)
}

# remote_prepare [FILE]: aborts the uploads a killed run left, and lists REMOTE_URL into FILE.
remote_prepare() { step bica-remote run_remote clean >/dev/null && { [ -z "${1:-}" ] || step bica-remote run_remote ls >"$1"; }; }

# remote_only_pipeline: the pipeline writes into a FIFO (in BACKUP_DIR) that bica-remote streams
# into a multipart upload, 8 MiB at a time: the archive is nowhere whole until the service
# completes it, which bica-remote does only once every stage exited 0 and we wrote "commit".
remote_only_pipeline() {
	mkfifo -m 600 -- "$TMP_ARCHIVE"
	run_remote put "$NAME" --commit-file "$TMP_ERRDIR/commit" <"$TMP_ARCHIVE" >"$TMP_ERRDIR/sum" 2>"$TMP_ERRDIR/bica-remote" &
	local remote_pid=$! remote_status=0 verdict=abort sum bytes
	run_pipeline
	if FAILURE=$(stage_failure "${STAGES[@]}") && [ -z "$FAILURE" ]; then verdict=commit; fi
	echo "$verdict" >"$TMP_ERRDIR/commit.tmp" && mv -f -- "$TMP_ERRDIR/commit.tmp" "$TMP_ERRDIR/commit"
	wait "$remote_pid" || remote_status=$?
	if ! FAILURE=$(stage_failure --show "${STAGES[@]}" "bica-remote:$remote_status") || [ -n "$FAILURE" ]; then backup_failed "$FAILURE"; fi
	sum=$(cut -d' ' -f1 <"$TMP_ERRDIR/sum")
	bytes=$(run_remote ls --prefix "$BACKUP_PREFIX" 2>/dev/null | awk -F '\t' -v n="$NAME" '$1 == n { print $2 }')
	say "backup OK: $(remote_url_of "$NAME"), ${bytes:-?} bytes, sha256 $sum, $((SECONDS - START)) s (remote only)"
	record_backup ok "$NAME" "${bytes:-0}" "$((SECONDS - START))" ""
	record_remote ok "$NAME" "$sum" ""
}

# remote_publish: copies NAME, then (sync) what is missing there, newest first, at most REMOTE_CATCH_UP_MAX.
# A failure is loud (summary line, status, metrics, hook, health), never touches local archives.
remote_publish() {
	local start=$SECONDS out=$TMP_ERRDIR/remote-out line synced=true
	remote_prepare && step bica-remote run_remote put "$NAME" "$BACKUP_DIR/$NAME" >"$out" || remote_failed "$start" || return
	say "remote copy OK: $(remote_url_of "$NAME"), sha256 $(cut -d' ' -f1 <"$out") (the local archive's), $((SECONDS - start)) s"
	record_remote ok "$NAME" "$(cut -d' ' -f1 <"$out")" ""
	step bica-remote run_remote sync --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --max "$REMOTE_CATCH_UP_MAX" >"$out" || synced=false
	while IFS= read -r line; do say "remote catch-up: $line"; done <"$out"
	$synced || remote_failed "$start"
}

# remote_failed START: the summary line, the record and the failure hook of a failed copy; returns 1.
remote_failed() {
	say "remote copy FAILED after $((SECONDS - $1)) s: ${STEP_FAILURE#bica-remote: }; the local archive $NAME is intact; the next run copies what is missing"
	record_remote failed "$NAME" "" "$STEP_FAILURE" --seconds "$((SECONDS - $1))" --hooks
	return 1
}

# run_prune, remote_prune ARGS: bica-prune's retention here and at REMOTE_URL.
remote_prune() { run_remote prune --prefix "$BACKUP_PREFIX" --keep-days "$REMOTE_RETENTION_DAYS" --keep-min "$KEEP_MIN" "$@"; }
run_prune() { bica-prune --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --keep-days "$RETENTION_DAYS" --keep-min "$KEEP_MIN" "$@"; }

# cmd_prune [--dry-run]: the retention now (a real one takes the lock).
cmd_prune() {
	local a
	for a in "$@"; do
		[ "$a" = --dry-run ] || die "$EXIT_CONFIG" "prune: unknown option '$a' (expected --dry-run)"
	done
	load_config storage
	[ $# -gt 0 ] || take_lock
	run_prune "$@"
}

# cmd_list [--json]: the archives (bica-state), what a prune would do now, and the off-site copies.
cmd_list() {
	load_config storage
	local args=(--dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX")
	! config_encrypts || args+=(--encrypted)
	[ "${1:-}" != --json ] || exec bica-state list "${args[@]}" --json
	[ $# -eq 0 ] || die "$EXIT_CONFIG" "list: unknown option '$1' (expected --json)"
	bica-state list "${args[@]}"
	printf '\nWhat a prune would do now (RETENTION_DAYS=%s, KEEP_MIN=%s):\n' "$RETENTION_DAYS" "$KEEP_MIN"
	run_prune --dry-run
	remote_enabled || return 0
	printf '\nCopies here and at %s:\n' "$REMOTE_URL"
	run_remote compare --dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" || { echo "  (cannot list $REMOTE_URL: see above)" && return 1; }
	printf '\nWhat a remote prune would do now (REMOTE_RETENTION_DAYS=%s, KEEP_MIN=%s):\n' "$REMOTE_RETENTION_DAYS" "$KEEP_MIN"
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
	local args=(--dir "$BACKUP_DIR" --prefix "$BACKUP_PREFIX" --max-age-hours "$((10#$HEALTH_MAX_AGE_HOURS))")
	! config_encrypts || args+=(--encrypted)
	! remote_enabled || args+=(--remote)
	! remote_only || args+=(--remote-only)
	exec bica-state health "${args[@]}"
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

# cmd_run: the container's default command: check and say everything at start, sweep what killed
# runs left, catch up a missed slot, then hand the schedule to supercronic.
cmd_run() {
	load_config
	start_log
	print_config
	probe_server
	start_notes
	[ -r "$CRONTAB" ] || die "$EXIT_CONFIG" "the crontab $CRONTAB cannot be read"
	(
		take_lock
		sweep_partials
	)
	export_for_jobs
	! is_true "$CATCH_UP" || catch_up_or_stop
	schedule
}

# start_log: with LOG_FILE, everything from here on (the catch-up, supercronic and every job it
# starts) also goes there; stdout and stderr stay what `docker logs` shows.
start_log() {
	[ -n "${LOG_FILE:-}" ] || return 0
	{ : >>"$LOG_FILE"; } 2>/dev/null || die "$EXIT_CONFIG" "LOG_FILE=$LOG_FILE cannot be written by user $(id -u)"
	exec > >(tee -a -- "$LOG_FILE") 2> >(tee -a -- "$LOG_FILE" >&2)
}

# start_notes: what the start can tell now rather than at 03:00: the image format under podman
# (which sets container=podman and cannot tell us the format), and whether the object store
# answers (the runs retry anyway: a network that is down now may be up by then).
start_notes() {
	[ "${container:-}" != podman ] ||
		say "note: under podman the image has its HEALTHCHECK only when built with 'podman build --format docker' (the default OCI format drops it)"
	remote_enabled || return 0
	local err
	if err=$(run_remote ls 2>&1 >/dev/null); then
		say "remote: $REMOTE_URL answers"
	else
		say "warning: $REMOTE_URL does not answer now; every run will retry the copy: ${err//$'\n'/ }"
	fi
}

# catch_up_or_stop: the catch-up; a stop (SIGTERM) during it lets that backup finish, as
# supercronic does for scheduled runs, then exits instead of starting the schedule.
catch_up_or_stop() {
	local stop_requested=false
	trap 'stop_requested=true' TERM INT
	catch_up
	trap - TERM INT
	if $stop_requested; then
		say "stop requested during the catch-up backup; exiting"
		exit 0
	fi
}

# schedule: execs supercronic on CRONTAB, plus the drill line from VERIFY_SCHEDULE (off unless
# asked for: the drill needs the identity; see README).
schedule() {
	local crontab=$CRONTAB
	if [ -n "${VERIFY_SCHEDULE:-}" ]; then
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
