#!/usr/bin/env bash
# entrypoint.sh: Bica's backup script and container entrypoint.
#
#   entrypoint.sh run               validate, catch up a missed slot, then exec supercronic (the
#                                   container's default command)
#   entrypoint.sh backup [--prune]  one backup: bica-dump | bica-pack | bica-seal > temporary,
#                                   fsync, rename; --prune applies RETENTION_DAYS afterwards
#   entrypoint.sh prune [--dry-run] apply RETENTION_DAYS now
#   entrypoint.sh list              the archives, newest last, and what the next prune would delete
#   entrypoint.sh check             validate the configuration and exit
#   entrypoint.sh healthcheck       exit 0 when the newest good backup is recent enough
#
# Every path and setting comes from variables (see `entrypoint.sh help`), so it runs the same
# outside a container with the bica binaries on PATH. Exit status: 0 success, 1 the operation
# failed, 2 the configuration is invalid, 3 another backup holds the lock.
set -euo pipefail
umask 077

readonly EXIT_FAILED=1 EXIT_CONFIG=2 EXIT_LOCKED=3

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
  list              show the archives and what the next prune would delete
  check             validate the configuration and print it (secrets redacted)
  healthcheck       exit 0 if the newest good backup is recent enough, else 1
  help              this text

Variables (default):
  DB_HOST (postgres-db)  DB_PORT (5432)  DB_USER  DB_NAME  DB_PASSWORD | DB_PASSWORD_FILE
  BACKUP_DIR (/mnt/backups)  BACKUP_PREFIX (bica-backup)  RETENTION_DAYS (7)  KEEP_MIN (2)
  ENCRYPT (auto: on when a key is set)  ENCRYPT_RECIPIENTS | ENCRYPT_RECIPIENTS_FILE
  ENCRYPT_PASS | ENCRYPT_PASS_FILE  DB_WAIT (60)  DB_GLOBALS (true)  PACK_LEVEL (pack default)
  CATCH_UP (true)  CRONTAB (/etc/bica/crontab.txt)  HEALTH_MAX_AGE_HOURS (14)

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

	# Secrets stay in shell variables and reach only the one child that needs them, through
	# its environment: never argv, never every child.
	SECRET_DB_PASSWORD=${DB_PASSWORD:-}
	SECRET_ENCRYPT_PASS=${ENCRYPT_PASS:-}
	unset DB_PASSWORD ENCRYPT_PASS

	local problems=()
	check_storage_config
	[ "$scope" = storage ] || check_backup_config
	if ((${#problems[@]})); then
		say "the configuration is invalid; nothing was done:"
		local p
		for p in "${problems[@]}"; do
			printf '  - %s\n' "$p" >&2
		done
		exit "$EXIT_CONFIG"
	fi
}

# check_storage_config: appends to the caller's problems array.
check_storage_config() {
	[[ $RETENTION_DAYS =~ ^[0-9]+$ ]] && ((10#$RETENTION_DAYS >= 1)) ||
		problems+=("RETENTION_DAYS='$RETENTION_DAYS' is not a whole number of days, 1 or more")
	[[ $KEEP_MIN =~ ^[0-9]+$ ]] && ((10#$KEEP_MIN >= 1)) ||
		problems+=("KEEP_MIN='$KEEP_MIN' is not a whole number, 1 or more")
	[[ $HEALTH_MAX_AGE_HOURS =~ ^[0-9]+$ ]] && ((10#$HEALTH_MAX_AGE_HOURS >= 1)) ||
		problems+=("HEALTH_MAX_AGE_HOURS='$HEALTH_MAX_AGE_HOURS' is not a whole number of hours, 1 or more")
	[[ $BACKUP_PREFIX =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]] ||
		problems+=("BACKUP_PREFIX='$BACKUP_PREFIX' may hold only letters, digits, '.', '_' and '-', and not start with '.' or '-'")
	if [ ! -d "$BACKUP_DIR" ]; then
		problems+=("BACKUP_DIR=$BACKUP_DIR does not exist or is not a directory")
	elif [ ! -w "$BACKUP_DIR" ] || [ ! -x "$BACKUP_DIR" ]; then
		problems+=("BACKUP_DIR=$BACKUP_DIR is not writable by user $(id -u)")
	fi
}

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
		crontab "$CRONTAB" >&2
}

archive_ext() {
	if [ "$ENCRYPT_MODE" = none ]; then echo .tar.gz; else echo .tar.gz.age; fi
}

# ---------------------------------------------------------------------------------------------
# Archives on disk

# archives: the names of our archives in BACKUP_DIR, one per line, oldest first by the time in
# the name, then by the same-minute suffix (-2, -3, ...).
archives() {
	local f name re="^${BACKUP_PREFIX//./\\.}-([0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{4})(-([0-9]+))?\\.tar\\.gz(\\.age)?$"
	for f in "$BACKUP_DIR"/"$BACKUP_PREFIX"-*; do
		name=${f##*/}
		if [[ $name =~ $re ]] && [ -f "$f" ] && [ ! -L "$f" ]; then
			printf '%s %s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[3]:-1}" "$name"
		fi
	done | sort -k1,1 -k2,2n | cut -d' ' -f3-
}

# name_epoch NAME: the UTC time in an archive name, as seconds since the epoch.
name_epoch() {
	local stamp=${1#"$BACKUP_PREFIX"-}
	stamp=${stamp:0:15} # YYYY-MM-DD_HHMM
	date -u -d "${stamp:0:10} ${stamp:11:2}:${stamp:13:2}" +%s
}

# sweep_partials: remove temporaries left by a run that was killed. Only called with the lock
# held, so no live run owns them.
sweep_partials() {
	local f
	for f in "$BACKUP_DIR"/."$BACKUP_PREFIX"-*.partial; do
		[ -f "$f" ] || continue
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
# Status, read by the healthcheck and `list`

STATUS_FILE() { echo "$BACKUP_DIR/bica-status.json"; }

# status_get KEY: a value from the status file (one "key": value per line), or nothing.
status_get() {
	local file
	file=$(STATUS_FILE)
	[ -r "$file" ] || return 0
	sed -n "s/^  \"$1\": \"\{0,1\}\([^\"]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$file" | head -n 1
}

json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/ }
	s=${s//$'\t'/ }
	printf '"%s"' "$s"
}

# write_status RESULT ARCHIVE BYTES SECONDS ERROR: record this attempt, keeping the last success.
write_status() {
	local result=$1 archive=$2 bytes=$3 seconds=$4 error=$5
	local now_iso last_ok last_ok_epoch last_ok_archive
	now_iso=$(date -u -d "@$RUN_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
	if [ "$result" = ok ]; then
		last_ok=$now_iso last_ok_epoch=$RUN_EPOCH last_ok_archive=$archive
	else
		last_ok=$(status_get last_success) last_ok_epoch=$(status_get last_success_epoch)
		last_ok_archive=$(status_get last_success_archive)
	fi
	local file tmp
	file=$(STATUS_FILE)
	tmp="$BACKUP_DIR/.bica-status.json.partial"
	{
		printf '{\n'
		printf '  "last_attempt": %s,\n' "$(json_str "$now_iso")"
		printf '  "last_attempt_epoch": %s,\n' "$RUN_EPOCH"
		printf '  "last_result": %s,\n' "$(json_str "$result")"
		printf '  "last_error": %s,\n' "$(json_str "$error")"
		printf '  "last_archive": %s,\n' "$(json_str "$archive")"
		printf '  "last_bytes": %s,\n' "${bytes:-0}"
		printf '  "last_seconds": %s,\n' "${seconds:-0}"
		printf '  "last_success": %s,\n' "$(json_str "$last_ok")"
		printf '  "last_success_epoch": %s,\n' "${last_ok_epoch:-0}"
		printf '  "last_success_archive": %s\n' "$(json_str "$last_ok_archive")"
		printf '}\n'
	} >"$tmp" || true
	if ! mv -f -- "$tmp" "$file"; then
		say "warning: cannot write the status file $file"
	fi
}

# ---------------------------------------------------------------------------------------------
# backup

# first_error FILE: the error a bica tool printed: its last "bica-NAME: " line that is not
# progress or a note (details and hints come before and after it).
first_error() {
	grep -E '^bica-[a-z]+: ' "$1" 2>/dev/null | grep -v -E '^bica-dump: (waiting|note|pg_dump)' | tail -n 1 || true
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
	load_config
	take_lock
	sweep_partials

	RUN_EPOCH=$(date -u +%s)
	local stamp ext name final n=1
	stamp=$(date -u -d "@$RUN_EPOCH" +%Y-%m-%d_%H%M)
	ext=$(archive_ext)
	name="$BACKUP_PREFIX-$stamp$ext"
	# Never overwrite: a second run in the same minute gets -2, -3, ...
	local base="$BACKUP_PREFIX-$stamp"
	while [ -e "$BACKUP_DIR/$base.tar.gz" ] || [ -e "$BACKUP_DIR/$base.tar.gz.age" ]; do
		n=$((n + 1))
		base="$BACKUP_PREFIX-$stamp-$n"
	done
	name=$base$ext
	final="$BACKUP_DIR/$name"
	TMP_ARCHIVE="$BACKUP_DIR/.$name.partial"
	TMP_GLOBALS="$BACKUP_DIR/.$BACKUP_PREFIX-$stamp-globals.sql.partial"
	TMP_ERRDIR=$(mktemp -d "${TMPDIR:-/tmp}/bica.XXXXXX")
	trap 'rm -rf -- "$TMP_ARCHIVE" "$TMP_GLOBALS" "$TMP_ERRDIR"' EXIT
	trap 'say "backup interrupted by a signal; nothing was published"; exit 143' TERM INT HUP

	say "backup started: $name from $DB_USER@$DB_HOST:$DB_PORT/$DB_NAME"
	local start=$SECONDS failure=""

	local dump_env=(DB_HOST="$DB_HOST" DB_PORT="$DB_PORT" DB_USER="$DB_USER" DB_NAME="$DB_NAME")
	[ -z "$SECRET_DB_PASSWORD" ] || dump_env+=(DB_PASSWORD="$SECRET_DB_PASSWORD")
	[ -z "$DB_PASSWORD_FILE" ] || dump_env+=(DB_PASSWORD_FILE="$DB_PASSWORD_FILE")

	local pack_args=(--meta "source=$DB_HOST:$DB_PORT/$DB_NAME" --meta "archive=$name")
	[ -z "$PACK_LEVEL" ] || pack_args+=(--level "$PACK_LEVEL")
	if is_true "$DB_GLOBALS"; then
		if env "${dump_env[@]}" bica-dump --globals --wait "$DB_WAIT" >"$TMP_GLOBALS" 2>"$TMP_ERRDIR/globals"; then
			cat "$TMP_ERRDIR/globals" >&2
			pack_args+=(--add "globals.sql=$TMP_GLOBALS")
		else
			cat "$TMP_ERRDIR/globals" >&2
			failure="bica-dump --globals: $(first_error "$TMP_ERRDIR/globals")"
			failure=${failure%: }
		fi
	fi

	local statuses=(0 0 0)
	if [ -z "$failure" ]; then
		# The pipeline. pipefail plus PIPESTATUS: any stage failing fails the run, so a dump
		# that died cannot become a small, valid-looking archive.
		set +e
		if [ "$ENCRYPT_MODE" = none ]; then
			env "${dump_env[@]}" bica-dump --wait "$DB_WAIT" 2>"$TMP_ERRDIR/0" |
				bica-pack "${pack_args[@]}" 2>"$TMP_ERRDIR/1" >"$TMP_ARCHIVE"
			statuses=("${PIPESTATUS[@]}" 0)
		elif [ "$ENCRYPT_MODE" = passphrase ] && [ -n "$SECRET_ENCRYPT_PASS" ]; then
			env "${dump_env[@]}" bica-dump --wait "$DB_WAIT" 2>"$TMP_ERRDIR/0" |
				bica-pack "${pack_args[@]}" 2>"$TMP_ERRDIR/1" |
				BICA_PASSPHRASE="$SECRET_ENCRYPT_PASS" bica-seal "${SEAL_ARGS[@]}" 2>"$TMP_ERRDIR/2" >"$TMP_ARCHIVE"
			statuses=("${PIPESTATUS[@]}")
		else
			env "${dump_env[@]}" bica-dump --wait "$DB_WAIT" 2>"$TMP_ERRDIR/0" |
				bica-pack "${pack_args[@]}" 2>"$TMP_ERRDIR/1" |
				bica-seal "${SEAL_ARGS[@]}" 2>"$TMP_ERRDIR/2" >"$TMP_ARCHIVE"
			statuses=("${PIPESTATUS[@]}")
		fi
		set -e
		local i
		for i in 0 1 2; do
			[ -s "$TMP_ERRDIR/$i" ] && cat "$TMP_ERRDIR/$i" >&2
		done
		# The root cause is the first stage that failed for its own reason; a stage that only
		# saw its reader go away (broken pipe) is a consequence.
		local stages=(bica-dump bica-pack bica-seal) fallback=""
		for i in 0 1 2; do
			((statuses[i] == 0)) && continue
			local msg
			msg=$(first_error "$TMP_ERRDIR/$i")
			[ -n "$msg" ] || msg="${stages[i]}: exited with status ${statuses[i]}"
			[ -n "$fallback" ] || fallback=$msg
			if ! grep -q -i -E 'broken pipe|stopped early' <<<"$msg"; then
				failure=$msg
				break
			fi
		done
		[ -n "$failure" ] || failure=$fallback
	fi

	if [ -z "$failure" ]; then
		# Durable before visible: fsync the data, link it under its final name (link fails
		# rather than overwrite), drop the temporary name, fsync the directory.
		if ! sync -- "$TMP_ARCHIVE"; then
			failure="cannot flush $TMP_ARCHIVE to disk"
		elif ! ln -- "$TMP_ARCHIVE" "$final" 2>/dev/null && ! { [ ! -e "$final" ] && mv -T -- "$TMP_ARCHIVE" "$final"; }; then
			failure="cannot publish $final"
		else
			rm -f -- "$TMP_ARCHIVE"
			sync -- "$BACKUP_DIR" || say "warning: cannot fsync $BACKUP_DIR"
		fi
	fi

	local seconds=$((SECONDS - start))
	if [ -n "$failure" ]; then
		write_status failed "" 0 "$seconds" "$failure"
		say "backup FAILED after ${seconds} s: $failure; nothing was published, older archives are untouched"
		exit "$EXIT_FAILED"
	fi
	local bytes
	bytes=$(stat -c %s -- "$final")
	write_status ok "$name" "$bytes" "$seconds" ""
	say "backup OK: $final, $bytes bytes, ${seconds} s"

	if $prune; then
		run_prune --now "$(date -u -d "@$RUN_EPOCH" +%Y-%m-%dT%H:%M:00Z)" ||
			die "$EXIT_FAILED" "the backup succeeded but the prune failed (see above)"
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

cmd_list() {
	load_config storage
	local name size enc
	printf '%-45s %14s  %s\n' ARCHIVE BYTES ENCRYPTED
	while IFS= read -r name; do
		[ -n "$name" ] || continue
		size=$(stat -c %s -- "$BACKUP_DIR/$name")
		enc=no
		[[ $name == *.age ]] && enc=yes
		printf '%-45s %14s  %s\n' "$name" "$size" "$enc"
	done < <(archives)
	say "what a prune now would do:"
	run_prune --dry-run
}

cmd_check() {
	load_config
	print_config
	say "configuration OK"
}

cmd_healthcheck() {
	load_config storage
	local result epoch archive now age max
	result=$(status_get last_result)
	epoch=$(status_get last_success_epoch)
	archive=$(status_get last_success_archive)
	now=$(date -u +%s)
	max=$((10#$HEALTH_MAX_AGE_HOURS * 3600))
	if [ -z "$result" ]; then
		echo "unhealthy: no backup has run yet"
		exit 1
	fi
	if [ "$result" != ok ]; then
		echo "unhealthy: the last backup failed: $(status_get last_error)"
		exit 1
	fi
	if [ -z "$archive" ] || [ ! -f "$BACKUP_DIR/$archive" ]; then
		echo "unhealthy: the last good archive $archive is missing from $BACKUP_DIR"
		exit 1
	fi
	age=$((now - ${epoch:-0}))
	if ((age > max)); then
		echo "unhealthy: the newest good backup ($archive) is $((age / 3600)) h old, more than $HEALTH_MAX_AGE_HOURS h"
		exit 1
	fi
	echo "healthy: $archive, $((age / 60)) min old"
}

# ---------------------------------------------------------------------------------------------
# run: the container's default command

# last_slot: the most recent time (epoch) at or before now when a backup line of the crontab
# should have fired, and whether that line prunes: prints "EPOCH prune|noprune". Understands
# lines whose minute and hour fields are numbers or comma lists and whose other fields are
# '*', which covers the shipped crontab; other lines are not used for catch-up.
last_slot() {
	local now=$1 best=0 best_prune=noprune line m h dom mon dow rest day t mm hh
	[ -r "$CRONTAB" ] || {
		echo "0 noprune"
		return
	}
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*# ]] && continue
		[[ $line == *"backup"* ]] || continue
		read -r m h dom mon dow rest <<<"$line" || true
		[[ $m =~ ^[0-9]+(,[0-9]+)*$ && $h =~ ^[0-9]+(,[0-9]+)*$ ]] || continue
		[ "$dom $mon $dow" = "* * *" ] || continue
		for day in 0 1; do
			for hh in ${h//,/ }; do
				for mm in ${m//,/ }; do
					t=$(date -u -d "$(date -u -d "@$((now - day * 86400))" +%Y-%m-%d) $hh:$mm" +%s)
					if ((t <= now && t > best)); then
						best=$t
						if [[ $rest == *--prune* ]]; then best_prune=prune; else best_prune=noprune; fi
					fi
				done
			done
		done
	done <"$CRONTAB"
	echo "$best $best_prune"
}

catch_up() {
	local now slot prune newest newest_epoch=0
	now=$(date -u +%s)
	read -r slot prune < <(last_slot "$now")
	if ((slot == 0)); then
		say "catch-up: no backup line with a fixed time in $CRONTAB; skipped"
		return 0
	fi
	newest=$(archives | tail -n 1)
	[ -z "$newest" ] || newest_epoch=$(name_epoch "$newest")
	if ((newest_epoch >= slot)); then
		say "catch-up: not needed (newest archive ${newest:-none} is not older than the last slot $(date -u -d "@$slot" +%Y-%m-%dT%H:%MZ))"
		return 0
	fi
	say "catch-up: the slot at $(date -u -d "@$slot" +%Y-%m-%dT%H:%MZ) was missed (newest archive: ${newest:-none}); backing up now"
	local args=()
	[ "$prune" = noprune ] || args=(--prune)
	# A failed catch-up is logged and recorded in the status file; the schedule still starts.
	"$0" backup "${args[@]}" || say "catch-up backup failed; the schedule continues"
}

cmd_run() {
	load_config
	print_config
	[ -r "$CRONTAB" ] || die "$EXIT_CONFIG" "the crontab $CRONTAB cannot be read"
	(
		take_lock
		sweep_partials
	)
	if is_true "$CATCH_UP"; then
		catch_up
	fi
	say "starting the schedule from $CRONTAB"
	exec supercronic -passthrough-logs "$CRONTAB"
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
	help | -h | --help) usage ;;
	*)
		usage >&2
		die "$EXIT_CONFIG" "unknown command '$cmd'"
		;;
	esac
}

main "$@"
