#!/bin/bash
# Initialise an empty PGDATA once (superuser, password, scram-sha-256 for host connections, the init scripts),
# then run the command, PostgreSQL by default. The environment is the well-known postgres image's.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_INITDB_ARGS:=}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA

fail() { echo "error: $*" >&2; exit 1; }
# Scratch files in /tmp, or in the socket's folder when the root file system is read-only.
tmp=/tmp && { [ -w "$tmp" ] || tmp=/var/run/postgresql; }

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    [ -z "${POSTGRES_PASSWORD:-}" ] || fail "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both"
    POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"
fi

# An arbitrary UID (OpenShift, a pod's runAsUser) has no passwd entry, and initdb needs its name: nss_wrapper
# answers the look-up from a file of our own. Kept for the server too, so that every tool it starts finds it.
if ! id -un > /dev/null 2>&1; then
    for wrapper in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do [ -s "$wrapper" ] && break; done
    [ -s "$wrapper" ] || fail "this UID has no passwd entry and libnss_wrapper.so is missing"
    NSS_WRAPPER_PASSWD="$(mktemp -p "$tmp")" NSS_WRAPPER_GROUP="$(mktemp -p "$tmp")"
    echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" > "$NSS_WRAPPER_PASSWD"
    cat /etc/group > "$NSS_WRAPPER_GROUP"
    getent group "$(id -g)" > /dev/null || echo "postgres:x:$(id -g):" >> "$NSS_WRAPPER_GROUP"
    export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
fi

init_database() {
    mkdir -p "$PGDATA"
    [ -O "$PGDATA" ] || fail "PGDATA ($PGDATA) is not owned by UID $(id -u); PostgreSQL must own it: mount the \
volume at its parent (/var/lib/postgresql), or set PGDATA to a subfolder of the mount"
    chmod 0700 "$PGDATA"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        fail "the database is uninitialized and no superuser password is set: set POSTGRES_PASSWORD \
(or POSTGRES_PASSWORD_FILE); POSTGRES_HOST_AUTH_METHOD=trust allows any connection without one (never do that)"
    fi
    local pwfile
    pwfile="$(mktemp -p "$tmp")"  # mode 0600
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    # shellcheck disable=SC2086 (POSTGRES_INITDB_ARGS is a list of arguments)
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$POSTGRES_HOST_AUTH_METHOD" $POSTGRES_INITDB_ARGS
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

    # A server for the set-up only: on the socket, no TCP, so that no client sees a half-made database.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    local psql=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER")
    if [ "$POSTGRES_DB" != postgres ]; then
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
            *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) [ ! -e "$f" ] || echo "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
}

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_database
fi
exec "$@"
