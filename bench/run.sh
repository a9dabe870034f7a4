#!/usr/bin/env bash
# bench/run.sh [SIZE_GB]: Bica against the usual backup pipelines, on one generated database, in
# one run, on this machine. Prints a Markdown table (the one in the README's Performance section).
#
#   bench/run.sh            a database whose custom-format dump is about 1 GB (about 15 minutes
#                           on 2 cores)
#   bench/run.sh 0.2        a quick one
#   RUNS=5 LEVELS="1 2 6" bench/run.sh 4
#
# What it does: installs what is missing (as root, from Debian's archive), builds the release
# binaries, starts its own throwaway PostgreSQL (pg_virtualenv, default settings), fills a
# database with SIZE_GB of text, JSON, numbers, timestamps, UUIDs and random bytes
# (bench/dataset.sql), then times each method RUNS times (default 3), interleaved, and prints
# the median. Everything it writes goes under a temporary directory, removed at the end.
#
# Columns: wall time; its ratio to the floor (pg_dump alone into /dev/null: no backup can be
# faster than reading the data); the archive's size and its ratio to gzip -6 of the same dump;
# each stage's peak RSS (GNU time %M; a wrapper's figure includes its child: bica-dump's is
# pg_dump's); and the bytes the backup wrote to disk (write_bytes in /proc/PID/io of the shell
# that ran the pipeline, which the kernel adds its reaped children to): equal to the archive's
# size (rounded up to pages) means no temporary copy was written.
# shellcheck disable=SC2016 # backquotes in single quotes are Markdown, not shell
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

size_gb=${1:-1}
runs=${RUNS:-3}
levels=${LEVELS-1 2 4 6 9}

say() { printf '%s\n' "$*" >&2; }

if [ -z "${BICA_BENCH_INNER:-}" ]; then
	need=() pkg=
	for pkg in postgresql-15 postgresql-common pigz openssl age time gzip tar procps; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
	done
	if [ ${#need[@]} -gt 0 ]; then
		say "bench: installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	say "bench: building the release binaries"
	cargo build --release --locked --bins >&2
	# A throwaway cluster with PostgreSQL's default settings; pg_virtualenv sets PGHOST etc.
	export BICA_BENCH_INNER=1
	exec pg_virtualenv -t -- "$0" "$@"
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
bin=$root/target/release
work=$(mktemp -d /var/tmp/bica-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/out" "$work/tmp"
export DB_NAME=bench

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
now() { date +%s.%N; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }

# --- the database -----------------------------------------------------------------------------
# Rows per GB of dump, from the average row sizes that pg_dump writes (measured): orders 40%,
# events 30%, customers 10%, attachments (random bytes) 20%.
say "bench: generating about $size_gb GB of data"
t0=$(now)
createdb bench
psql -X -q -d bench -v part=schema -v rows=0 -v first=0 -f bench/dataset.sql
jobs() { # TABLE ROWS_PER_GB: eight slices of the table's rows
	awk -v t="$1" -v per="$2" -v gb="$size_gb" 'BEGIN {
		n = int(per * gb); step = int((n + 7) / 8); if (step < 1) step = 1
		for (f = 1; f <= n; f += step) print t, (f + step - 1 <= n ? step : n - f + 1), f }'
}
{
	jobs orders 1440000
	jobs events 1410000
	jobs customers 404000
	jobs attachments 133000
} >"$work/jobs"
# shellcheck disable=SC2016 # expanded by sh, not here
xargs -P 2 -L 1 sh -c 'psql -X -q -d bench -v part="$0" -v rows="$1" -v first="$2" -f bench/dataset.sql' <"$work/jobs"
psql -X -q -d bench -c 'DROP TABLE corpus' -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
pg_dump -Fc -Z0 -f "$work/bench.dump" bench
dump_bytes=$(stat -c %s "$work/bench.dump")
db_bytes=$(psql -X -At -d bench -c "SELECT pg_database_size('bench')")
say "bench: database $(mb "$db_bytes") MB, custom-format dump $(mb "$dump_bytes") MB, in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}') s"

age-keygen -o "$work/key.txt" 2>/dev/null
key=$(age-keygen -y "$work/key.txt")
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/pass"

# --- the methods ----------------------------------------------------------------------------
# Each prints nothing and leaves its archive (if any) in $work/out/NAME. Stages run under GNU
# time appending their peak RSS (KiB) to $work/rss.NAME.N; the table shows the largest.
T() { # T NAME N CMD...: run CMD under GNU time, peak RSS to $work/rss.NAME.N
	local name=$1 n=$2
	shift 2
	/usr/bin/time -a -f %M -o "$work/rss.$name.$n" "$@"
}
method_floor() {
	T floor 1 pg_dump -Fc -Z0 bench >/dev/null
}
method_gzip() {
	T gzip 1 pg_dump -Fc -Z0 bench | T gzip 2 gzip -6 | T gzip 3 age -r "$key" >"$work/out/gzip"
}
method_pigz() {
	T pigz 1 pg_dump -Fc -Z0 bench | T pigz 2 pigz -6 | T pigz 3 age -r "$key" >"$work/out/pigz"
}
method_sqltar() {
	T sqltar 1 pg_dump -Fp -f "$work/tmp/bench.sql" bench
	T sqltar 2 tar -czf "$work/tmp/bench.tar.gz" -C "$work/tmp" bench.sql
	T sqltar 3 openssl enc -aes-256-cbc -pbkdf2 -pass "file:$work/pass" -in "$work/tmp/bench.tar.gz" -out "$work/out/sqltar"
	rm -f "$work/tmp/bench.sql" "$work/tmp/bench.tar.gz"
}
method_bica() { # optional level
	local name=bica${1:+-L$1}
	T "$name" 1 "$bin/bica-dump" | T "$name" 2 "$bin/bica-pack" ${1:+--level "$1"} | T "$name" 3 "$bin/bica-seal" -r "$key" >"$work/out/$name"
}
export -f T method_floor method_gzip method_pigz method_sqltar method_bica
export work key bin

# run NAME CMD...: one timed run; appends "wall written" to $work/times.NAME
run() {
	local name=$1 t1 t2 written
	shift
	sync
	t1=$(now)
	written=$(bash -c 'set -euo pipefail; "$@"; awk "/^write_bytes/ {print \$2}" /proc/$$/io' _ "$@")
	t2=$(now)
	echo "$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.2f", b - a}') $written" >>"$work/times.$name"
	say "  $name: $(tail -1 "$work/times.$name" | cut -d' ' -f1) s"
}

methods=(floor gzip pigz sqltar bica)
for ((r = 1; r <= runs; r++)); do
	say "bench: backups, run $r of $runs"
	for m in "${methods[@]}"; do
		run "$m" "method_$m"
	done
	for l in $levels; do
		run "bica-L$l" method_bica "$l"
	done
done

# --- restores -------------------------------------------------------------------------------
restore_plain() { pg_restore -d "$1" "$work/bench.dump"; }
restore_bica() {
	"$bin/bica-seal" -d -i "$work/key.txt" <"$work/out/bica" | "$bin/bica-pack" -x | pg_restore -d "$1"
}
export -f restore_plain restore_bica
for ((r = 1; r <= runs; r++)); do
	say "bench: restores, run $r of $runs"
	for m in plain bica; do
		dropdb --if-exists restored
		createdb restored
		run "restore-$m" "restore_$m" restored
	done
done
dropdb --if-exists restored

# --- standard tools read the archive ------------------------------------------------------------
say "bench: checking the archive with age, gzip and GNU tar"
age -d -i "$work/key.txt" -o "$work/tmp/bica.tar.gz" "$work/out/bica"
gzip -t "$work/tmp/bica.tar.gz"
members=$(tar -tzf "$work/tmp/bica.tar.gz" | wc -l)
tar -xzOf "$work/tmp/bica.tar.gz" --wildcards 'bica/dump.*' | cmp -s - <("$bin/bica-pack" -x "$work/tmp/bica.tar.gz") ||
	{
		say "bench: tar and bica-pack -x disagree"
		exit 1
	}
# pg_restore -l reads the table of contents only; cat drains the rest so tar ends normally.
tar -xzOf "$work/tmp/bica.tar.gz" --wildcards 'bica/dump.*' | {
	pg_restore -l >/dev/null
	cat >/dev/null
}
standard="age -d, gzip -t, tar -tz ($members members) and tar -xzO | pg_restore -l accept it"
rm -f "$work/tmp/bica.tar.gz"

# --- memory at 4x: the dump streamed four times through every stage, both ways ------------------
say "bench: memory with 4 x the dump streamed through pack, seal, unseal and unpack"
t1=$(now)
for _ in 1 2 3 4; do cat "$work/bench.dump"; done |
	T mem4x 1 "$bin/bica-pack" | T mem4x 2 "$bin/bica-seal" -r "$key" |
	T mem4x 3 "$bin/bica-seal" -d -i "$work/key.txt" | T mem4x 4 "$bin/bica-pack" -x | wc -c >"$work/mem4x.bytes"
mem4x_wall=$(awk -v a="$t1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')

# --- the table ----------------------------------------------------------------------------------
payload() { # the gzip stream inside an age file, in bytes
	age -d -i "$work/key.txt" "$1" | wc -c
}
gz6=$(payload "$work/out/gzip")
floor=$(cut -d' ' -f1 "$work/times.floor" | median)
rss() { # NAME STAGES...: "label MiB, label MiB"
	local name=$1 i=1 out=() label
	shift
	for label in "$@"; do
		out+=("$label $(mib "$(sort -g "$work/rss.$name.$i" | tail -1)")")
		i=$((i + 1))
	done
	local IFS=, joined
	joined="${out[*]}"
	echo "${joined//,/, }"
}
row() { # NAME LABEL STAGES...
	local name=$1 label=$2 wall written size ratio sizecol
	shift 2
	wall=$(cut -d' ' -f1 "$work/times.$name" | median)
	written=$(cut -d' ' -f2 "$work/times.$name" | median)
	if [ -f "$work/out/$name" ]; then
		size=$(stat -c %s "$work/out/$name")
		case $name in
		sqltar) ratio="(plain SQL) $(awk -v a="$size" -v b="$gz6" 'BEGIN {printf "%.3f", a / b}')" ;;
		*) ratio=$(awk -v a="$(payload "$work/out/$name")" -v b="$gz6" 'BEGIN {printf "%.3f", a / b}') ;;
		esac
		sizecol="$(mb "$size") MB | $ratio"
	else
		sizecol="- | -"
	fi
	printf '| %s | %.1f | %.2f | %s | %s | %s MB |\n' "$label" "$wall" \
		"$(awk -v a="$wall" -v b="$floor" 'BEGIN {print a / b}')" "$sizecol" "$(rss "$name" "$@")" "$(mb "$written")"
}

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "Database $(mb "$db_bytes") MB on disk, custom-format dump $(mb "$dump_bytes") MB; $(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo) GiB; PostgreSQL $(pg_dump --version | awk '{print $3}') with default settings; median of $runs runs; load average before the run: ${load_before:-?}."
echo
echo "| backup | wall s | x floor | archive | x gzip -6 | peak RSS per stage (MiB) | written to disk |"
echo "|---|---|---|---|---|---|---|"
row floor 'floor: `pg_dump -Fc -Z0 > /dev/null`' pg_dump
row gzip '`pg_dump -Fc -Z0 \| gzip -6 \| age -r KEY > file`' pg_dump gzip age
row pigz '`pg_dump -Fc -Z0 \| pigz -6 \| age -r KEY > file`' pg_dump pigz age
row sqltar '`pg_dump -Fp > /tmp/x.sql; tar czf; openssl enc -aes-256-cbc -pbkdf2`' pg_dump tar+gzip openssl
row bica '**Bica: `bica-dump \| bica-pack \| bica-seal -r KEY > file`**' 'bica-dump+pg_dump' bica-pack bica-seal
echo
gzip_wall=$(cut -d' ' -f1 "$work/times.gzip" | median)
bica_wall=$(cut -d' ' -f1 "$work/times.bica" | median)
each() { cut -d' ' -f1 "$work/times.$1" | paste -sd' '; }
echo "Every run, wall s: floor $(each floor); Bica $(each bica); gzip -6 $(each gzip)."
echo
echo "Bica is $(awk -v a="$gzip_wall" -v b="$bica_wall" 'BEGIN {printf "%.2f", a / b}')x faster than \`pg_dump | gzip -6 | age\`; the archive: $standard."
echo
if [ -n "$levels" ]; then
	echo "| bica-pack --level | wall s | x floor | archive | x gzip -6 | peak RSS per stage (MiB) | written to disk |"
	echo "|---|---|---|---|---|---|---|"
	for l in $levels; do
		row "bica-L$l" "$l" 'bica-dump+pg_dump' bica-pack bica-seal
	done
	echo
fi
plain=$(cut -d' ' -f1 "$work/times.restore-plain" | median)
brest=$(cut -d' ' -f1 "$work/times.restore-bica" | median)
echo "| restore | wall s | x plain |"
echo "|---|---|---|"
printf '| %s | %.1f | 1.00 |\n' '`pg_restore -d NEW file.dump` (a plain local file)' "$plain"
printf '| %s | %.1f | %.2f |\n' '`bica-seal -d \| bica-pack -x \| pg_restore -d NEW`' "$brest" "$(awk -v a="$brest" -v b="$plain" 'BEGIN {print a / b}')"
echo
echo "Every restore, wall s: plain $(each restore-plain); Bica $(each restore-bica)."
echo
echo "Memory at 4x: $(mb "$(cat "$work/mem4x.bytes")") MB (the dump four times) through \`bica-pack | bica-seal | bica-seal -d | bica-pack -x\` in $mem4x_wall s, peak RSS $(rss mem4x bica-pack bica-seal 'bica-seal -d' 'bica-pack -x') MiB."
