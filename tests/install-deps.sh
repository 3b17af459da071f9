#!/usr/bin/env bash
# Installs what the end-to-end tests and the benchmarks need, only when it is
# missing (idempotent, safe to run on every test run):
#   - psql, pg_isready, pgbench       (Debian: postgresql-client)
#   - pgbouncer                       (Debian: pgbouncer; benchmark baseline)
#   - psycopg2 for the tests' python3 (PyPI: psycopg2-binary)
#   - mariadb, mariadb-admin          (Debian: mariadb-client; MySQL tests)
#   - sysbench                        (Debian: sysbench; MySQL OLTP workload)
#   - PyMySQL, mysql-connector-python (PyPI; MySQL client matrix)
#   - MariaDB Connector/J             (Debian: libmariadb-java,
#                                      /usr/share/java/mariadb-java-client.jar)
#   - javac                           (Debian: default-jdk-headless, only when
#                                      no javac is on PATH)
#   - cargo-nextest                   (crates.io; the test runner)
# apt-get update runs only when a Debian package has to be installed.
set -euo pipefail

PYTHON="${PYTHON:-python3}"

log() { echo "install-deps: $*" >&2; }

need_apt=()

if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    need_apt+=(postgresql-client)
fi
# On Debian 12 /usr/bin/pgbench is a wrapper from postgresql-client-common
# that needs the versioned client package behind it.
if ! pgbench --version >/dev/null 2>&1 && ! /usr/lib/postgresql/15/bin/pgbench --version >/dev/null 2>&1; then
    need_apt+=(postgresql-client postgresql-client-15)
fi
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    need_apt+=(pgbouncer)
fi

if ! command -v mariadb >/dev/null 2>&1 || ! command -v mariadb-admin >/dev/null 2>&1; then
    need_apt+=(mariadb-client)
fi
if ! command -v sysbench >/dev/null 2>&1; then
    need_apt+=(sysbench)
fi
MARIADB_JAR=/usr/share/java/mariadb-java-client.jar
if [ ! -f "$MARIADB_JAR" ]; then
    need_apt+=(libmariadb-java)
fi
if ! command -v javac >/dev/null 2>&1; then
    need_apt+=(default-jdk-headless)
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
        log "missing Debian packages ${need_apt[*]} and not root: install them by hand (apt-get install -y ${need_apt[*]})"
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    # pgbouncer's package would start its own service on 6432; the tests never
    # rely on it, and policy-rc.d is left as the machine has it.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# pgbench must be reachable one way or the other now.
if ! pgbench --version >/dev/null 2>&1 && ! /usr/lib/postgresql/15/bin/pgbench --version >/dev/null 2>&1; then
    log "pgbench is still not runnable after installing postgresql-client-15"
    exit 1
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "$PYTHON not found: install CPython 3 (or set PYTHON=/path/to/python3)"
    exit 1
fi
if ! "$PYTHON" -c 'import psycopg2' >/dev/null 2>&1; then
    log "installing psycopg2-binary for $("$PYTHON" -c 'import sys; print(sys.executable)')"
    # A Debian system python refuses plain pip installs (PEP 668); a pyenv or
    # venv python accepts them. Try the plain way first.
    if ! "$PYTHON" -m pip install -q psycopg2-binary; then
        "$PYTHON" -m pip install -q --break-system-packages psycopg2-binary
    fi
    "$PYTHON" -c 'import psycopg2' || { log "psycopg2 still not importable by $PYTHON"; exit 1; }
fi

# pip_install MODULE PACKAGE: installs PACKAGE unless MODULE imports.
pip_install() {
    local module="$1" package="$2"
    if "$PYTHON" -c "import $module" >/dev/null 2>&1; then
        return 0
    fi
    log "installing $package for $("$PYTHON" -c 'import sys; print(sys.executable)')"
    if ! "$PYTHON" -m pip install -q "$package"; then
        "$PYTHON" -m pip install -q --break-system-packages "$package"
    fi
    "$PYTHON" -c "import $module" || { log "$module still not importable by $PYTHON"; exit 1; }
}
pip_install pymysql PyMySQL
pip_install mysql.connector mysql-connector-python

if [ ! -f "$MARIADB_JAR" ]; then
    log "$MARIADB_JAR is still missing after installing libmariadb-java"
    exit 1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

log "all test dependencies present"
