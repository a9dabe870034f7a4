# Bica: scheduled, encrypted PostgreSQL backups.
#
#   docker build -t bica .
#   docker run -d --restart unless-stopped -v /mnt/backups:/mnt/backups \
#     -e DB_HOST=db.example.org -e DB_USER=app -e DB_NAME=app -e DB_PASSWORD_FILE=/run/secrets/pw \
#     -e ENCRYPT_RECIPIENTS=age1... bica
#
# Build arguments (all optional):
#   RUST_IMAGE            the Rust toolchain image of the build stage (default rust:1-slim-trixie)
#   BICA_UID, BICA_GID    the user the container runs as (default 10001:10001); archives in the
#                         volume are owned by it with mode 0600. Pick your host user's IDs to read
#                         them without root, or override at run time with `--user` / `user:`.
#   PG_CLIENTS            the PostgreSQL client majors to install (default "18 17 15"): bica-dump
#                         picks the one matching each server. 17 is trixie's own; 15 comes from
#                         bookworm (and bookworm-security), 18 from forky (Debian testing, with
#                         its libpq5); apt pins every other package of those two releases at
#                         priority 1, so nothing else is taken from them. A major that forky
#                         packages later (19) is one more number in this list.
#   SUPERCRONIC_VERSION, SUPERCRONIC_SHA256
#                         the supercronic package from Debian's pool, pinned and checked by hash.
#                         The hash is that of the amd64 package; to build for another architecture
#                         (e.g. arm64), pass that architecture's hash:
#                           --build-arg SUPERCRONIC_SHA256=$(sha256sum supercronic_0.2.45-1_arm64.deb)

ARG RUST_IMAGE=rust:1-slim-trixie

# ---------------------------------------------------------------------------------------------
# Build: the bica binaries, release mode, exactly the locked dependencies.
FROM ${RUST_IMAGE} AS build
WORKDIR /src

# Dependencies first, in their own layer: a change to Bica's sources does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src bins/bica-dump bins/bica-pack bins/bica-seal bins/bica-prune bins/bica-state \
        bins/bica-compare bins/bica-dbprops bins/bica-remote bins/bica-restore bins/bica-config \
    && touch src/lib.rs \
    && for b in dump pack seal prune state compare dbprops remote restore config; do echo 'fn main() {}' > "bins/bica-$b/main.rs"; done \
    && cargo build --release --locked \
    && rm -rf src bins

COPY src ./src
COPY bins ./bins
# COPY keeps the sources' old mtimes; touch them so cargo does not take the placeholders' build
# for an up-to-date one.
RUN find src bins -name '*.rs' -exec touch {} + \
    && cargo build --release --locked \
    && mkdir -p /out \
    && cp target/release/bica-dump target/release/bica-pack target/release/bica-seal \
          target/release/bica-prune target/release/bica-state \
          target/release/bica-compare target/release/bica-dbprops target/release/bica-remote \
          target/release/bica-restore target/release/bica-config /out/

# ---------------------------------------------------------------------------------------------
# supercronic: the cron for containers (logs to stdout, reaps children, graceful stop), taken
# from Debian's package pool and checked against a pinned SHA-256 before anything uses it.
FROM debian:trixie-slim AS supercronic
ARG TARGETARCH=amd64
ARG SUPERCRONIC_VERSION=0.2.45-1
ARG SUPERCRONIC_SHA256=a40026d0242aaf8b63b8c35e4e2ca1eea59b2836f58e2f64f6f3c0bff1d40128
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# apt-helper (part of apt, in every Debian image) downloads without installing curl or wget.
RUN /usr/lib/apt/apt-helper download-file \
        "http://deb.debian.org/debian/pool/main/s/supercronic/supercronic_${SUPERCRONIC_VERSION}_${TARGETARCH}.deb" \
        /tmp/supercronic.deb \
    && echo "${SUPERCRONIC_SHA256}  /tmp/supercronic.deb" | sha256sum -c - \
    && dpkg-deb -x /tmp/supercronic.deb /tmp/supercronic \
    && mkdir -p /out \
    && cp /tmp/supercronic/usr/bin/supercronic /tmp/supercronic/usr/bin/cronexpr /out/

# ---------------------------------------------------------------------------------------------
# Runtime: Debian trixie, the PostgreSQL clients of every major in PG_CLIENTS (pg_dump N dumps
# servers from 9.2 to N), the binaries, the script.
FROM debian:trixie-slim
ARG BICA_UID=10001
ARG BICA_GID=10001
ARG PG_CLIENTS="18 17 15"

# Debian packages each PostgreSQL major in one release: 15 in bookworm, 17 in trixie, 18 in forky
# (testing). Those two are added as apt sources at priority 1, so apt takes from them only what
# trixie lacks (postgresql-client-15, postgresql-client-18); libpq5 is pinned to forky at 500, so
# the newest libpq (18, which pg_dump 18 needs and older clients accept) is installed. Testing's
# Release file expires a week after it is made and mirrors lag behind, so for forky alone apt
# does not check Valid-Until (the signatures are checked as always). The package names pin the
# majors; the exact versions follow Debian's updates on every rebuild. Each client's pg_dump runs
# once at the end, so a broken client fails the build, not the first backup.
# curl is for the ON_SUCCESS_CMD / ON_FAILURE_CMD hooks (healthchecks.io, Slack, SMTP); man-db
# reads the bica man pages (`docker run --rm --entrypoint man bica bica-pack`).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008,SC2046
RUN printf '%s\n' \
        'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
        'Types: deb' 'URIs: http://deb.debian.org/debian-security' 'Suites: bookworm-security' \
        'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
        'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: forky' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' 'Check-Valid-Until: no' \
        >/etc/apt/sources.list.d/bica-postgresql.sources \
    && printf '%s\n' \
        'Package: libpq5' 'Pin: release n=forky' 'Pin-Priority: 500' '' \
        'Package: *' 'Pin: release n=forky' 'Pin-Priority: 1' '' \
        'Package: *' 'Pin: release n=bookworm' 'Pin-Priority: 1' '' \
        'Package: *' 'Pin: release n=bookworm-security' 'Pin-Priority: 1' \
        >/etc/apt/preferences.d/bica-postgresql \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        $(printf 'postgresql-client-%s ' ${PG_CLIENTS}) ca-certificates curl man-db tzdata util-linux \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && for major in ${PG_CLIENTS}; do "/usr/lib/postgresql/${major}/bin/pg_dump" --version; done

RUN groupadd --gid "${BICA_GID}" bica \
    && useradd --uid "${BICA_UID}" --gid "${BICA_GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin bica \
    && mkdir -p /mnt/backups /etc/bica \
    && chown "${BICA_UID}:${BICA_GID}" /mnt/backups \
    && chmod 0700 /mnt/backups

COPY --from=supercronic /out/supercronic /out/cronexpr /usr/local/bin/
COPY --from=build /out/ /usr/local/bin/
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
COPY crontab.txt /etc/bica/crontab.txt
COPY man/*.1 /usr/local/share/man/man1/

# MANPAGER: the image has no pager; man prints the page (pipe it into your own pager).
ENV BACKUP_DIR=/mnt/backups \
    CRONTAB=/etc/bica/crontab.txt \
    MANPAGER=cat

USER ${BICA_UID}:${BICA_GID}
VOLUME ["/mnt/backups"]

# Healthy only while the newest good archive is younger than HEALTH_MAX_AGE_HOURS (14: the 13 h
# from 14:00 to 03:00, plus one) and the last run succeeded. During the start period (the
# catch-up backup at start) the state is "starting"; a container that has never made a backup
# is never reported healthy.
HEALTHCHECK --interval=5m --timeout=30s --start-period=15m --retries=2 \
    CMD ["entrypoint.sh", "healthcheck"]

ENTRYPOINT ["entrypoint.sh"]
CMD ["run"]
