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
#   - cargo-deny                      (crates.io; licence/ban/source checks)
#   - nightly toolchain, cargo-fuzz   (rustup, crates.io; the fuzz smoke)
#   - curl                            (Debian: curl; HTTP tests)
#   - nginx                           (Debian: nginx-light, else nginx; the
#                                      HTTP benchmark's upstream and reference
#                                      proxy. Tests and bench/http.sh start
#                                      their own non-daemon nginx with a temp
#                                      prefix; the package's own service is
#                                      kept from starting, or stopped)
#   - wrk                             (Debian: wrk; HTTP load generator)
#   - requests for the tests' python3 (PyPI: requests; HTTP client tests)
#   - prometheus, promtool            (Debian: prometheus; the dashboards
#                                      and alert rules tests run their own
#                                      Prometheus; the package's service is
#                                      kept from starting, or stopped)
#   - jsonschema, PyYAML for the tests' python3 (PyPI; the admin API's
#                                      OpenAPI conformance check)
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
if ! command -v curl >/dev/null 2>&1; then
    need_apt+=(curl)
fi
# nginx lives in /usr/sbin, which a non-root PATH may lack.
NGINX_MISSING=0
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    NGINX_MISSING=1
    # nginx-light (Debian 12) is the smallest build with proxy and gzip;
    # later Debian releases only have nginx.
    if apt-cache show nginx-light >/dev/null 2>&1; then
        need_apt+=(nginx-light)
    else
        need_apt+=(nginx)
    fi
fi
if ! command -v wrk >/dev/null 2>&1; then
    need_apt+=(wrk)
fi
PROMETHEUS_MISSING=0
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
    PROMETHEUS_MISSING=1
    need_apt+=(prometheus)
fi
# pg_tls.rs: `openssl s_client -starttls postgres` shows the served
# certificate; ssl-cert provides the snakeoil certificate PostgreSQL serves.
if ! command -v openssl >/dev/null 2>&1; then
    need_apt+=(openssl)
fi
if [ ! -f /etc/ssl/certs/ssl-cert-snakeoil.pem ]; then
    need_apt+=(ssl-cert)
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
    # nginx's package would start a system nginx on port 80: the tests and
    # benchmarks never use it, and it must not hold port 80 on a shared
    # machine. When the machine has no policy-rc.d, a temporary one that
    # denies every service start (exit 101) covers this install only.
    # (pgbouncer's service on 6432 is kept from starting by the same file.)
    TEMP_POLICY_RC=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# written by danxia tests/install-deps.sh for one apt-get run\nexit 101\n' |
            $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        TEMP_POLICY_RC=1
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null || status=$?
    if [ "$TEMP_POLICY_RC" -eq 1 ]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
    fi
    [ "$status" -eq 0 ] || { log "apt-get install ${need_apt[*]} failed"; exit "$status"; }
    if [ "$NGINX_MISSING" -eq 1 ]; then
        # Belt and braces: a system nginx the postinst started anyway (a
        # policy-rc.d that allows starts) is stopped and disabled. Only the
        # service this install created is touched.
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
        elif [ -s /run/nginx.pid ]; then
            $SUDO /usr/sbin/nginx -s quit >/dev/null 2>&1 || true
        fi
    fi
    if [ "$PROMETHEUS_MISSING" -eq 1 ]; then
        # The same for a system Prometheus (port 9090): tests start their own.
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
    fi
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    log "nginx is still missing after installing it"
    exit 1
fi
if ! command -v wrk >/dev/null 2>&1; then
    log "wrk is still missing after installing it"
    exit 1
fi
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
    log "/usr/bin/prometheus or /usr/bin/promtool is still missing after installing prometheus"
    exit 1
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
pip_install requests requests
# The admin API's OpenAPI conformance check (tests/clients/openapi_check.py).
pip_install jsonschema jsonschema
pip_install yaml PyYAML

if [ ! -f "$MARIADB_JAR" ]; then
    log "$MARIADB_JAR is still missing after installing libmariadb-java"
    exit 1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

if ! cargo deny --version >/dev/null 2>&1; then
    log "installing cargo-deny"
    cargo install cargo-deny --locked
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    log "installing the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

log "all test dependencies present"
