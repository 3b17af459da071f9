//! End-to-end test harness: starts the real `danxia` binary (built in release
//! mode) with a generated configuration in a temporary directory, in front of
//! the real PostgreSQL on 127.0.0.1:5432 (and, with [`Options::mysql`], the
//! real MariaDB on 127.0.0.1:3306), and gives tests what they need to look at
//! it from outside: its ports, its admin endpoints (`/metrics`, `/healthz`,
//! `/readyz`, … with the bearer token of `<instance dir>/admin.token`), its
//! audit files and its log.
//!
//! The harness never talks to the proxy's internals: everything goes through
//! the process boundary (sockets, files, signals), exactly as an operator
//! would. It also owns [`wire`], a tiny hand-written PostgreSQL frontend used
//! by the protocol-level tests, so that those tests do not depend on the codec
//! under test.
//!
//! Missing tools (psql, pgbench, python3 with psycopg2, the mariadb client,
//! PyMySQL, mysql-connector-python, javac and MariaDB Connector/J) or a
//! database that is not running are failures with a message saying how to
//! fix them, never silent skips. The MySQL side's helpers (the `mariadb`
//! CLI, `tests/mysql/mysql_steps.py`, the JDBC program, output comparison)
//! are at the end of this file, before [`wire`].
// No unsafe code but one kill(2) call (Danxia::signal): deny, with a
// scoped allow there (std has no way to send an arbitrary signal).
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The port of the real PostgreSQL the proxy fronts (and tests compare against).
pub const DIRECT_PORT: u16 = 5432;

/// How long [`run`] lets a client command run before it is killed: a hung
/// client must fail the test with its output, not hang the suite.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How long [`Danxia::start_with`] waits for `/readyz` to answer 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The admin API token file of every harness instance, in its directory
/// (written 0600 before danxia starts; Prometheus in the dashboard tests
/// reads it as `credentials_file`).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Writes a fresh random admin token (64 hex digits) to `path`, mode 0600.
pub fn write_admin_token(path: &Path) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    writeln!(f, "{token}").expect("write admin token");
    artifacts::register_secret(&token);
    token
}

/// How long [`Danxia::stop`] waits for the process to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives one level below the workspace root")
        .to_path_buf()
}

/// Path of the danxia binary: `$DANXIA_BIN`, else
/// `<workspace>/target/release/danxia`.
pub fn bin_path() -> PathBuf {
    let path = match std::env::var_os("DANXIA_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("target/release/danxia"),
    };
    if !path.is_file() {
        panic!(
            "danxia binary not found at {}: run `cargo build --release -p danxia` first \
             (or set DANXIA_BIN), or use tests/run.sh which builds it",
            path.display()
        );
    }
    path
}

/// What differs from the harness defaults in the generated configuration.
///
/// `[limits]` and `[audit]` are TOML tables, so extra keys for them go in
/// [`Options::limits`] / [`Options::audit`] (spliced into the table) rather
/// than in `extra_toml`, which would define the table twice.
#[derive(Clone, Debug)]
pub struct Options {
    /// The listener's backend address. Default `127.0.0.1:5432`.
    pub backend: String,
    /// `limits.max_message_bytes`; `None` keeps danxia's default.
    pub max_message_bytes: Option<u64>,
    /// `audit.statement_text` (`full` | `normalized` | `none`).
    pub statement_text: Option<String>,
    /// `audit.on_full` (`block` | `drop`).
    pub audit_on_full: Option<String>,
    /// `limits.shutdown_grace`, e.g. `"5s"`.
    pub shutdown_grace: Option<String>,
    /// Extra `[limits]` keys: (key, TOML value written verbatim, e.g.
    /// `("startup_timeout", "\"1s\"")`).
    pub limits: Vec<(String, String)>,
    /// Extra `[audit]` keys: (key, TOML value written verbatim).
    pub audit: Vec<(String, String)>,
    /// Appended verbatim at the end of the file (e.g. `[policy]`, more
    /// `[[listener]]`s).
    pub extra_toml: String,
    /// Extra keys of the `pg` listener's table (e.g. `mode = "monitor"`).
    pub listener_toml: String,
    /// Also a MySQL listener named `mysql` on [`Danxia::mysql_port`] in
    /// front of MariaDB on 127.0.0.1:3306.
    pub mysql: bool,
    /// Extra keys of the `mysql` listener's table (with `mysql`).
    pub mysql_listener_toml: String,
    /// The `mysql` listener's backend; `None`: 127.0.0.1:3306.
    pub mysql_backend: Option<String>,
    /// Body of the `pg` listener's `[listener.tls]` table (see
    /// [`tls::TestPki::listener_tls`]); written after `listener_toml`.
    pub pg_tls: Option<String>,
    /// Body of the `pg` listener's `[listener.backend_tls]` table.
    pub pg_backend_tls: Option<String>,
    /// Body of the `mysql` listener's `[listener.tls]` table.
    pub mysql_tls: Option<String>,
    /// Body of the `mysql` listener's `[listener.backend_tls]` table.
    pub mysql_backend_tls: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: format!("127.0.0.1:{DIRECT_PORT}"),
            max_message_bytes: None,
            statement_text: None,
            audit_on_full: None,
            shutdown_grace: None,
            limits: Vec::new(),
            audit: Vec::new(),
            extra_toml: String::new(),
            listener_toml: String::new(),
            mysql: false,
            mysql_listener_toml: String::new(),
            mysql_backend: None,
            pg_tls: None,
            pg_backend_tls: None,
            mysql_tls: None,
            mysql_backend_tls: None,
        }
    }
}

impl Options {
    /// The shipped configuration's policy: the default pack in enforce mode
    /// (the allowlist file lands in danxia's working directory).
    pub fn default_pack() -> Options {
        Options {
            extra_toml: format!(
                "[policy]\ndir = {}\nmode = \"enforce\"\nallowlist = \"allowlist.toml\"\n",
                toml_str(
                    &workspace_root()
                        .join("policies/packs/default")
                        .display()
                        .to_string()
                )
            ),
            ..Options::default()
        }
    }
}

/// Quotes a string as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Options {
    /// The configuration file text for a danxia listening on `pg_port` (one
    /// PostgreSQL listener named `pg`) and, with [`Options::mysql`], on
    /// `mysql_port` (a MySQL listener named `mysql` in front of
    /// 127.0.0.1:3306), with its admin endpoint on `admin_port` and its
    /// audit files in `audit_dir`.
    pub fn to_toml(
        &self,
        pg_port: u16,
        admin_port: u16,
        mysql_port: u16,
        audit_dir: &Path,
    ) -> String {
        let mut s = String::new();
        s.push_str("# generated by the danxia e2e harness\n");
        s.push_str(&format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n"));
        s.push_str("[audit]\n");
        // `audit` may name another directory (a second instance continuing
        // the chain of the first).
        if !self.audit.iter().any(|(k, _)| k == "dir") {
            s.push_str(&format!(
                "dir = {}\n",
                toml_str(&audit_dir.to_string_lossy())
            ));
        }
        // Tests read the files while danxia runs: keep the flush delay short.
        let mut audit: Vec<(String, String)> = vec![("fsync_interval".into(), "\"100ms\"".into())];
        if let Some(v) = &self.statement_text {
            audit.push(("statement_text".into(), toml_str(v)));
        }
        if let Some(v) = &self.audit_on_full {
            audit.push(("on_full".into(), toml_str(v)));
        }
        for (k, v) in &self.audit {
            audit.retain(|(k2, _)| k2 != k);
            audit.push((k.clone(), v.clone()));
        }
        for (k, v) in &audit {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s.push_str("\n[limits]\n");
        let mut limits: Vec<(String, String)> = Vec::new();
        if let Some(v) = self.max_message_bytes {
            limits.push(("max_message_bytes".into(), v.to_string()));
        }
        if let Some(v) = &self.shutdown_grace {
            limits.push(("shutdown_grace".into(), toml_str(v)));
        }
        for (k, v) in &self.limits {
            limits.retain(|(k2, _)| k2 != k);
            limits.push((k.clone(), v.clone()));
        }
        for (k, v) in &limits {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s.push_str("\n[[listener]]\nname = \"pg\"\nprotocol = \"postgres\"\n");
        s.push_str(&format!("listen = \"127.0.0.1:{pg_port}\"\n"));
        s.push_str(&format!("backend = {}\n", toml_str(&self.backend)));
        if !self.listener_toml.is_empty() {
            s.push_str(&self.listener_toml);
            s.push('\n');
        }
        push_tls_tables(&mut s, &self.pg_tls, &self.pg_backend_tls);
        if self.mysql {
            s.push_str("\n[[listener]]\nname = \"mysql\"\nprotocol = \"mysql\"\n");
            s.push_str(&format!("listen = \"127.0.0.1:{mysql_port}\"\n"));
            let backend = self
                .mysql_backend
                .clone()
                .unwrap_or_else(|| format!("127.0.0.1:{MYSQL_DIRECT_PORT}"));
            s.push_str(&format!("backend = {}\n", toml_str(&backend)));
            if !self.mysql_listener_toml.is_empty() {
                s.push_str(&self.mysql_listener_toml);
                s.push('\n');
            }
            push_tls_tables(&mut s, &self.mysql_tls, &self.mysql_backend_tls);
        }
        if !self.extra_toml.is_empty() {
            s.push('\n');
            s.push_str(&self.extra_toml);
            s.push('\n');
        }
        s
    }
}

/// Appends a listener's `[listener.tls]` / `[listener.backend_tls]`
/// sub-tables (after its own keys, as TOML requires).
fn push_tls_tables(s: &mut String, tls: &Option<String>, backend_tls: &Option<String>) {
    for (table, body) in [("tls", tls), ("backend_tls", backend_tls)] {
        if let Some(b) = body {
            s.push_str(&format!("[listener.{table}]\n{b}\n"));
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound then released: another process may
/// grab it in between, which [`Danxia::start_with`] handles by retrying).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A port on 127.0.0.1 where nothing listens (for "backend down" tests).
pub fn closed_port() -> u16 {
    free_port()
}

/// What to wait for after spawning danxia.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// `/readyz` answers 200 (listeners bound, backends reachable).
    Ready,
    /// `/healthz` answers 200 (the process is up; the backend may be down).
    Healthy,
}

/// A running danxia process with its own ports, config and audit directory.
pub struct Danxia {
    pub pg_port: u16,
    pub admin_port: u16,
    /// Always allocated (distinct from the other ports); listened on only
    /// with [`Options::mysql`].
    pub mysql_port: u16,
    pub audit_dir: PathBuf,
    pub config_path: PathBuf,
    child: Option<Child>,
    exit: Option<ExitStatus>,
    stderr_path: PathBuf,
    /// Kept last so the directory outlives everything that points into it.
    tempdir: tempfile::TempDir,
}

impl Danxia {
    /// danxia with the default options, waiting until `/readyz` is 200.
    pub fn start() -> Danxia {
        Danxia::start_with(Options::default())
    }

    /// danxia with `opts`, waiting (≤ 20 s) until `/readyz` is 200; panics
    /// with danxia's stderr otherwise.
    pub fn start_with(opts: Options) -> Danxia {
        Danxia::start_waiting(opts, WaitFor::Ready)
    }

    /// danxia with `opts`, waiting only until `/healthz` is 200 (use when the
    /// backend is deliberately unreachable and `/readyz` must say 503).
    pub fn start_healthy_only(opts: Options) -> Danxia {
        Danxia::start_waiting(opts, WaitFor::Healthy)
    }

    /// Spawns danxia and waits for `wait`. Ports are picked by binding
    /// 127.0.0.1:0; if danxia exits early (e.g. a port was taken in between)
    /// it is retried with new ports, up to three times.
    pub fn start_waiting(opts: Options, wait: WaitFor) -> Danxia {
        let bin = bin_path();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let tempdir = tempfile::Builder::new()
                .prefix("danxia-e2e-")
                .tempdir()
                .expect("create tempdir");
            let pg_port = free_port();
            let mut admin_port = free_port();
            while admin_port == pg_port {
                admin_port = free_port();
            }
            let mut mysql_port = free_port();
            while mysql_port == pg_port || mysql_port == admin_port {
                mysql_port = free_port();
            }
            let audit_dir = tempdir.path().join("audit");
            let config_path = tempdir.path().join("danxia.toml");
            let token_path = tempdir.path().join(ADMIN_TOKEN_FILE);
            write_admin_token(&token_path);
            let admin_line = format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n");
            let text = opts
                .to_toml(pg_port, admin_port, mysql_port, &audit_dir)
                .replacen(
                    &admin_line,
                    &format!(
                        "{admin_line}token_file = {}\n",
                        toml_str(&token_path.to_string_lossy())
                    ),
                    1,
                );
            fs::write(&config_path, text).expect("write config");
            let stderr_path = tempdir.path().join("danxia.stderr");
            let stderr_file = fs::File::create(&stderr_path).expect("create stderr file");
            let stdout_file = stderr_file.try_clone().expect("clone stderr file");
            let child = Command::new(&bin)
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .current_dir(tempdir.path())
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(stdout_file)
                .stderr(stderr_file)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let mut d = Danxia {
                pg_port,
                admin_port,
                mysql_port,
                audit_dir,
                config_path,
                child: Some(child),
                exit: None,
                stderr_path,
                tempdir,
            };
            let path = match wait {
                WaitFor::Ready => "/readyz",
                WaitFor::Healthy => "/healthz",
            };
            let deadline = Instant::now() + READY_TIMEOUT;
            let mut last_status: String;
            loop {
                if let Some(status) = d.try_wait() {
                    last_err = format!(
                        "danxia exited early with {status} before {path} was 200.\nconfig:\n{}\nstderr:\n{}",
                        fs::read_to_string(&d.config_path).unwrap_or_default(),
                        d.stderr()
                    );
                    break;
                }
                match try_http_auth(admin_port, "GET", path, admin_token(&token_path).as_deref()) {
                    Ok((200, _, _)) => return d,
                    Ok((code, _, body)) => last_status = format!("{code} {body}"),
                    Err(e) => last_status = format!("error: {e}"),
                }
                if Instant::now() > deadline {
                    let stderr = d.stderr();
                    let mariadb = if opts.mysql {
                        format!(
                            " Is MariaDB up on 127.0.0.1:{MYSQL_DIRECT_PORT}? (mariadb-admin -h127.0.0.1 ping)"
                        )
                    } else {
                        String::new()
                    };
                    panic!(
                        "danxia did not answer 200 on {path} within {READY_TIMEOUT:?} \
                         (last: {last_status}). Is PostgreSQL up on {}? \
                         (pg_isready -h 127.0.0.1 -p {DIRECT_PORT}){mariadb}\nconfig:\n{}\nstderr:\n{stderr}",
                        opts.backend,
                        fs::read_to_string(&d.config_path).unwrap_or_default(),
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Exited early: drop (cleans up) and retry with new ports unless
            // the failure is clearly not about ports.
            if !last_err.contains("in use") && !last_err.contains("bind") {
                panic!("{last_err}");
            }
        }
        panic!("danxia failed to start three times; last:\n{last_err}");
    }

    /// libpq keyword DSN for a connection through danxia.
    pub fn pg_dsn(&self, user: &str, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={db}",
            self.pg_port
        )
    }

    /// libpq URL for a connection through danxia.
    pub fn pg_url(&self, user: &str, db: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.pg_port)
    }

    /// `psql` through danxia (see [`psql`]).
    pub fn psql(&self, user: &str, db: &str) -> Command {
        psql(self.pg_port, user, db)
    }

    /// The `mariadb` CLI through danxia's MySQL listener (see [`mariadb`]).
    pub fn mariadb(&self, user: &str, password: Option<&str>, db: &str) -> Command {
        mariadb(self.mysql_port, user, password, db)
    }

    /// The admin token file (`<instance dir>/admin.token`).
    pub fn admin_token_path(&self) -> PathBuf {
        self.dir().join(ADMIN_TOKEN_FILE)
    }

    /// The admin token as the file holds it now (read on every request,
    /// so a test that rotates it needs nothing else).
    pub fn admin_token(&self) -> String {
        admin_token(&self.admin_token_path()).unwrap_or_else(|| {
            panic!(
                "cannot read the admin token {}",
                self.admin_token_path().display()
            )
        })
    }

    /// Plain HTTP/1.1 GET on the admin port with the admin token; panics if
    /// it cannot connect.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http_request("GET", path, Some(&self.admin_token()))
    }

    /// POST (empty body) to the admin endpoint with the admin token.
    pub fn http_post(&self, path: &str) -> (u16, String) {
        self.http_request("POST", path, Some(&self.admin_token()))
    }

    /// GET on the admin port without any token.
    pub fn http_get_unauthenticated(&self, path: &str) -> (u16, String) {
        self.http_request("GET", path, None)
    }

    /// Any method (empty body) on the admin port, with `token` as the
    /// bearer token (none: no Authorization header).
    pub fn http_request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let (code, _, body) = self.http_request_full(method, path, token);
        (code, body)
    }

    /// Like [`Danxia::http_request`], with the response headers (names
    /// lowercased).
    pub fn http_request_full(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, BTreeMap<String, String>, String) {
        try_http_auth(self.admin_port, method, path, token)
            .unwrap_or_else(|e| panic!("{method} {path} on admin port {}: {e}", self.admin_port))
    }

    /// The `/metrics` text; panics unless it is 200.
    pub fn metrics(&self) -> String {
        let (code, body) = self.http_get("/metrics");
        assert_eq!(code, 200, "/metrics answered {code}: {body}");
        body
    }

    /// Sum of all series whose name is `name` and whose labels include every
    /// (k, v) given; 0 when no such series is printed (the exporter prints a
    /// series only once it was first touched).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics(), name, labels).unwrap_or(0.0)
    }

    /// Like [`Danxia::metric`] but `None` when no matching series is printed.
    pub fn metric_opt(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_sum(&self.metrics(), name, labels)
    }

    /// Polls [`Danxia::metric`] until `pred` holds (≤ `timeout`); returns the
    /// last value, panicking with the metrics text on timeout.
    pub fn wait_metric(
        &self,
        timeout: Duration,
        name: &str,
        labels: &[(&str, &str)],
        pred: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics();
            let v = metric_sum(&text, name, labels).unwrap_or(0.0);
            if pred(v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "metric {name}{labels:?} = {v} never satisfied the condition within {timeout:?}.\nmetrics:\n{text}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every audit event so far: all `audit-*.jsonl` files in name order
    /// (= chain order). A line not yet terminated by a newline (being
    /// written) is ignored; any complete line that is not JSON panics.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        read_audit_dir(&self.audit_dir)
    }

    /// Polls the audit files until an event matches `pred` (≤ `timeout`) and
    /// returns all events read; panics listing the events seen on timeout.
    pub fn wait_audit(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.audit_events();
            if events.iter().any(&pred) {
                return events;
            }
            if Instant::now() > deadline {
                panic!(
                    "no matching audit event within {timeout:?}; events seen ({}):\n{}\ndanxia stderr:\n{}",
                    events.len(),
                    events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the audit files until at least `n` events match `pred`
    /// (≤ `timeout`) and returns the matching ones.
    pub fn wait_audit_count(
        &self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.audit_events();
            let matching: Vec<_> = events.iter().filter(|e| pred(e)).cloned().collect();
            if matching.len() >= n {
                return matching;
            }
            if Instant::now() > deadline {
                panic!(
                    "wanted ≥ {n} matching audit events within {timeout:?}, got {}; all events ({}):\n{}",
                    matching.len(),
                    events.len(),
                    events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `danxia audit verify <audit_dir>` (run it after [`Danxia::shutdown`]
    /// for a complete chain).
    pub fn audit_verify(&self) -> Output {
        audit_verify_dir(&self.audit_dir)
    }

    /// danxia's log (stderr and stdout) so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_else(|e| format!("<cannot read log: {e}>"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("danxia child exists")
    }

    /// The temporary directory holding config, audit dir and log.
    pub fn dir(&self) -> &Path {
        self.tempdir.path()
    }

    /// `Some(status)` once the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(st)) => {
                self.exit = Some(st);
                self.exit
            }
            Ok(None) => None,
            Err(e) => panic!("try_wait on danxia: {e}"),
        }
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, sig: i32) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped
        // unless `exit` is set, in which case the caller sees ESRCH).
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits (≤ `timeout`) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait ≤ 40 s, return the exit status; kills with SIGKILL and
    /// panics on timeout. Keeps the temp directory (audit files, log) alive
    /// so the test can inspect and verify them afterwards.
    pub fn shutdown(&mut self) -> ExitStatus {
        if let Some(st) = self.try_wait() {
            return st;
        }
        self.signal(libc::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(st) => st,
            None => {
                if let Some(c) = self.child.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!(
                    "danxia did not exit within {STOP_TIMEOUT:?} after SIGTERM; killed. stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// SIGTERM, wait ≤ 40 s, return the exit status (see [`Danxia::shutdown`]
    /// to keep the audit files for inspection).
    pub fn stop(mut self) -> ExitStatus {
        self.shutdown()
    }
}

impl Drop for Danxia {
    fn drop(&mut self) {
        let running = self.try_wait().is_none() && self.child.is_some();
        if running {
            if let Some(c) = self.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let name = self.tempdir.path().file_name().map_or_else(
            || format!("danxia-{}", self.admin_port),
            |n| n.to_string_lossy().into_owned(),
        );
        artifacts::keep_instance(&name, &self.stderr_path, &self.audit_dir);
        if std::thread::panicking() {
            // The test failed: show what the proxy said, it is usually why.
            let log = self.stderr();
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(200);
                lines[start..].join("\n")
            };
            eprintln!(
                "---- danxia log (last 200 lines; pg port {}, mysql port {}, admin port {}) ----\n{tail}\n---- end of danxia log ----",
                self.pg_port, self.mysql_port, self.admin_port
            );
        }
    }
}

/// Reads all audit events in `dir` (see [`Danxia::audit_events`]).
/// `danxia audit verify DIR` on any directory (e.g. a tampered copy).
pub fn audit_verify_dir(dir: &Path) -> Output {
    run(Command::new(bin_path()).arg("audit").arg("verify").arg(dir))
}

pub fn read_audit_dir(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.starts_with("audit-") && name.ends_with(".jsonl")
            })
            .collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    let mut events = Vec::new();
    for f in files {
        let text = match fs::read(&f) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let text = String::from_utf8_lossy(&text);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..i + 1],
            None => "",
        };
        for (i, line) in complete.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{} line {}: not JSON ({e}): {line}", f.display(), i + 1)
            });
            events.push(v);
        }
    }
    events
}

/// Audit events of `kind` ("statement", "session_start", ...).
pub fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Parses Prometheus text and sums the series named `name` whose labels
/// include all of `labels`; `None` when no series matches.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series_name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => continue,
        };
        if series_name != name {
            continue;
        }
        let (series_labels, value_part) = if let Some(stripped) = rest.strip_prefix('{') {
            match parse_labels(stripped) {
                Some((l, after)) => (l, after),
                None => continue,
            }
        } else {
            (BTreeMap::new(), rest)
        };
        let value_str = value_part.split_whitespace().next().unwrap_or("");
        let value: f64 = match value_str {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        if labels
            .iter()
            .all(|(k, v)| series_labels.get(*k).map(|s| s.as_str()) == Some(*v))
        {
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

/// Parses `k="v",k2="v2"}` (after the opening brace); returns the labels and
/// the text after the closing brace.
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'}' {
            return Some((labels, &s[i + 1..]));
        }
        let eq = s[i..].find('=')? + i;
        let key = s[i..eq].trim().to_string();
        i = eq + 1;
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        let mut val = String::new();
        loop {
            let c = *bytes.get(i)?;
            match c {
                b'\\' => {
                    let n = *bytes.get(i + 1)?;
                    val.push(match n {
                        b'n' => '\n',
                        other => other as char,
                    });
                    i += 2;
                }
                b'"' => {
                    i += 1;
                    break;
                }
                _ => {
                    // Copy one UTF-8 char.
                    let ch = s[i..].chars().next()?;
                    val.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        labels.insert(key, val);
    }
}

/// Plain HTTP/1.1 GET to 127.0.0.1:`port` (Connection: close), decoding a
/// chunked body if needed. No token: for danxia's admin endpoint use
/// [`Danxia::http_get`].
pub fn try_http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    try_http_auth(port, "GET", path, None).map(|(c, _, b)| (c, b))
}

/// Plain HTTP/1.1 POST with an empty body to 127.0.0.1:`port`.
pub fn try_http_post(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    try_http_auth(port, "POST", path, None).map(|(c, _, b)| (c, b))
}

/// The token in an admin token file, trimmed; `None` if unreadable.
pub fn admin_token(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|t| t.trim().to_string())
}

/// An HTTP/1.1 request with an empty body to 127.0.0.1:`port`, with
/// `Authorization: Bearer <token>` when a token is given: (status, headers
/// with lowercased names, body).
pub fn try_http_auth(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, BTreeMap<String, String>, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let bad =
        |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{m}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status_line = head.lines().next().ok_or_else(|| bad("empty response"))?;
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_string()
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((code, headers, body))
}

fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size_line, rest) = s.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        s = rest.get(size + 2..)?;
    }
}

/// Runs a command (stdin closed, output captured), killing it after
/// [`COMMAND_TIMEOUT`]. Panics if it cannot be started, naming how to
/// install the tool.
pub fn run(cmd: &mut Command) -> Output {
    run_with_input(cmd, None)
}

/// Like [`run`] but writes `input` to the command's stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    run_with_input(cmd, Some(input.as_bytes().to_vec()))
}

fn run_with_input(cmd: &mut Command, input: Option<Vec<u8>>) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {desc}: {e} (install the test dependencies with tests/install-deps.sh)"
        )
    });
    let writer = input.map(|data| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            panic!(
                "{desc} did not finish within {COMMAND_TIMEOUT:?}; killed.\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Runs a command and returns its stdout; panics with stdout and stderr
/// unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    check_ok(&desc, out)
}

/// Like [`run_ok`] with `input` on stdin.
pub fn run_ok_stdin(cmd: &mut Command, input: &str) -> String {
    let desc = format!("{cmd:?}");
    let out = run_with_stdin(cmd, input);
    check_ok(&desc, out)
}

fn check_ok(desc: &str, out: Output) -> String {
    if !out.status.success() {
        panic!(
            "{desc} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p port -U user -d db` with
/// PGCONNECT_TIMEOUT=10 and no password prompt.
pub fn psql(port: u16, user: &str, db: &str) -> Command {
    let mut c = Command::new("psql");
    c.args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .arg("-p")
        .arg(port.to_string())
        .arg("-U")
        .arg(user)
        .arg("-d")
        .arg(db)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .env_remove("PGSSLMODE");
    c
}

/// `psql` straight to PostgreSQL (no proxy), for set-up and comparisons.
pub fn psql_direct(user: &str, db: &str) -> Command {
    psql(DIRECT_PORT, user, db)
}

/// The python3 that has psycopg2: `$PYTHON`, else `python3`.
pub fn python() -> Command {
    let py = std::env::var("PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    Command::new(py)
}

/// The `pgbench` binary: on PATH, else PostgreSQL 15's lib directory.
pub fn pgbench() -> Command {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("pgbench").is_file()))
        .unwrap_or(false);
    if on_path {
        return Command::new("pgbench");
    }
    let alt = Path::new("/usr/lib/postgresql/15/bin/pgbench");
    if alt.is_file() {
        return Command::new(alt);
    }
    panic!(
        "pgbench not found on PATH nor at {}: run tests/install-deps.sh",
        alt.display()
    );
}

/// A login role without superuser or DDL rights beyond the `public`
/// schema, as an application account looks to a policy (the shipped packs
/// treat `postgres` and `root` as administrators). Created once, safely
/// from tests running in parallel.
pub const APP_USER: &str = "danxia_app";

/// Creates [`APP_USER`] if missing and lets it use and create in `public`.
pub fn ensure_app_role() {
    require_postgres();
    // One transaction under an advisory lock: concurrent GRANTs on the
    // same object fail with "tuple concurrently updated".
    let sql = format!(
        "select pg_advisory_xact_lock(48151623);\n\
         do $$ begin create role {APP_USER} login; exception when duplicate_object then null; end $$;\n\
         grant usage, create on schema public to {APP_USER};"
    );
    let out = run(psql_direct("postgres", "test")
        .arg("-1")
        .arg("-q")
        .arg("-c")
        .arg(sql));
    assert!(
        out.status.success(),
        "creating role {APP_USER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[[allow]]` blocks in a learned allowlist file (its header comment
/// mentions the table name too, so only table headers count).
pub fn learned_entries(text: &str) -> usize {
    text.lines().filter(|l| l.trim() == "[[allow]]").count()
}

/// Panics with a clear message unless PostgreSQL answers on 127.0.0.1:5432.
pub fn require_postgres() {
    if TcpStream::connect_timeout(
        &([127, 0, 0, 1], DIRECT_PORT).into(),
        Duration::from_secs(3),
    )
    .is_err()
    {
        panic!(
            "PostgreSQL is not listening on 127.0.0.1:{DIRECT_PORT}: start it \
             (e.g. `pg_ctlcluster --skip-systemctl-redirect 15 main start`) before the e2e tests"
        );
    }
}

// ---------------------------------------------------------------- MySQL side

/// The port of the real MariaDB the `mysql` listener fronts (and tests
/// compare against).
pub const MYSQL_DIRECT_PORT: u16 = 3306;

/// A non-administrator MariaDB account (the shipped packs treat `root` as an
/// administrator), with ALL on `test`.*: see [`ensure_mysql_app_user`].
pub const MYSQL_APP_USER: &str = "app";
/// [`MYSQL_APP_USER`]'s password.
pub const MYSQL_APP_PASSWORD: &str = "app";

/// MariaDB Connector/J as Debian's libmariadb-java installs it.
pub const MARIADB_JDBC_JAR: &str = "/usr/share/java/mariadb-java-client.jar";

/// A file under `tests/mysql/` (client scripts, corpus, Java source).
pub fn mysql_file(name: &str) -> PathBuf {
    workspace_root().join("tests/mysql").join(name)
}

/// The `mariadb` CLI on 127.0.0.1:`port` over TCP as `user` (with
/// `password` if given) in `db`: no option files (`--no-defaults`), no TLS
/// (`--skip-ssl`: a listener with `[listener.tls]` would otherwise be asked
/// for it by the 10.11 client; tests/tests/mysql_tls.rs covers TLS), `--batch` output (tab-separated,
/// column names on the first line, special characters escaped) in utf8mb4,
/// comments sent to the server with the statement (`--comments`: the
/// client strips them by default, and tests mark statements with them), a
/// 10 s connect timeout. Add `-e SQL` or give SQL on stdin; `-N` drops the
/// column names, `--force` goes on after errors.
pub fn mariadb(port: u16, user: &str, password: Option<&str>, db: &str) -> Command {
    let mut c = Command::new("mariadb");
    c.arg("--no-defaults")
        .arg("-h127.0.0.1")
        .arg(format!("-P{port}"))
        .arg("--protocol=TCP")
        .arg(format!("-u{user}"))
        .arg("--skip-ssl")
        .arg("--connect-timeout=10")
        .arg("--batch")
        .arg("--comments")
        .arg("--default-character-set=utf8mb4");
    if let Some(pw) = password {
        c.arg(format!("--password={pw}"));
    }
    c.arg(db)
        .env_remove("MYSQL_PWD")
        .env_remove("MYSQL_HOST")
        .env_remove("MYSQL_TCP_PORT");
    c
}

/// The `mariadb` CLI straight to MariaDB (no proxy), for set-up and
/// comparisons.
pub fn mariadb_direct(user: &str, password: Option<&str>, db: &str) -> Command {
    mariadb(MYSQL_DIRECT_PORT, user, password, db)
}

/// Runs `sql` straight on MariaDB as root in `test`; panics with the
/// client's output unless it succeeds. Returns stdout (batch format).
pub fn mariadb_exec(sql: &str) -> String {
    run_ok(mariadb_direct("root", None, "test").arg("-e").arg(sql))
}

/// Panics with a clear message unless MariaDB answers on 127.0.0.1:3306
/// (`mariadb-admin ping`).
pub fn require_mariadb() {
    let out = Command::new("mariadb-admin")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "--protocol=TCP",
            "-uroot",
            "--skip-ssl",
        ])
        .arg(format!("-P{MYSQL_DIRECT_PORT}"))
        .arg("--connect-timeout=5")
        .arg("ping")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "MariaDB is not answering on 127.0.0.1:{MYSQL_DIRECT_PORT} (`mariadb-admin -h127.0.0.1 ping`: {} {}{}): \
             start it (e.g. `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, as .ci/run does), \
             with root allowed from 127.0.0.1 without a password and a database `test`",
            o.status,
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run mariadb-admin ({e}): install the MariaDB client with tests/install-deps.sh (Debian: mariadb-client)"
        ),
    }
}

/// Creates [`MYSQL_APP_USER`] (password [`MYSQL_APP_PASSWORD`]) at
/// `127.0.0.1`, `localhost` and `%` with ALL on `test`.*, if missing.
/// Idempotent and safe from tests running in parallel (under a MariaDB
/// named lock).
pub fn ensure_mysql_app_user() {
    require_mariadb();
    let mut sql = String::from("select get_lock('danxia_e2e_app_user', 30) into @locked;\n");
    for host in ["127.0.0.1", "localhost", "%"] {
        sql.push_str(&format!(
            "create user if not exists '{MYSQL_APP_USER}'@'{host}' identified by '{MYSQL_APP_PASSWORD}';\n\
             alter user '{MYSQL_APP_USER}'@'{host}' identified by '{MYSQL_APP_PASSWORD}';\n\
             grant all on test.* to '{MYSQL_APP_USER}'@'{host}';\n"
        ));
    }
    sql.push_str("do release_lock('danxia_e2e_app_user');\n");
    let out = run_with_stdin(mariadb_direct("root", None, "test").arg("-N"), &sql);
    assert!(
        out.status.success(),
        "creating the MariaDB user {MYSQL_APP_USER}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Like [`run_with_stdin`] with raw bytes (e.g. SQL encoded in GBK).
pub fn run_with_stdin_bytes(cmd: &mut Command, input: &[u8]) -> Output {
    run_with_input(cmd, Some(input.to_vec()))
}

/// One run of `tests/mysql/mysql_steps.py`: its exit status and output, and
/// its stdout parsed as one JSON value per line.
#[derive(Debug)]
pub struct StepsRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// One line per step (see the script's doc comment).
    pub lines: Vec<serde_json::Value>,
}

impl StepsRun {
    /// The line of the step labelled `label`; panics listing the run if none.
    pub fn step(&self, label: &str) -> &serde_json::Value {
        self.lines
            .iter()
            .find(|l| l["label"] == label)
            .unwrap_or_else(|| {
                panic!(
                    "no step labelled {label:?} in the run:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }
}

/// A connection for `tests/mysql/mysql_steps.py`.
#[derive(Clone, Debug)]
pub struct MysqlConn {
    /// `pymysql`, `connector-pure` or `connector-cext`.
    pub driver: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// More arguments, e.g. `--multi-statements`, `--local-infile`,
    /// `--charset gbk`, `--autocommit off`.
    pub args: Vec<String>,
}

impl MysqlConn {
    /// root in `test` on `port` with `driver`.
    pub fn root(driver: &str, port: u16) -> MysqlConn {
        MysqlConn {
            driver: driver.into(),
            port,
            user: "root".into(),
            password: None,
            database: "test".into(),
            args: Vec::new(),
        }
    }

    /// [`MYSQL_APP_USER`] in `test` on `port` with `driver`.
    pub fn app(driver: &str, port: u16) -> MysqlConn {
        MysqlConn {
            user: MYSQL_APP_USER.into(),
            password: Some(MYSQL_APP_PASSWORD.into()),
            ..MysqlConn::root(driver, port)
        }
    }

    /// The same connection on another port (direct vs. through danxia).
    pub fn on(&self, port: u16) -> MysqlConn {
        MysqlConn {
            port,
            ..self.clone()
        }
    }

    /// With more script arguments.
    pub fn with(mut self, args: &[&str]) -> MysqlConn {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Runs `steps` (a JSON array) and returns whatever happened.
    pub fn try_steps(&self, steps: &serde_json::Value) -> StepsRun {
        let mut cmd = python();
        cmd.arg(mysql_file("mysql_steps.py"))
            .arg("--driver")
            .arg(&self.driver)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--user")
            .arg(&self.user)
            .arg("--database")
            .arg(&self.database);
        if let Some(pw) = &self.password {
            cmd.arg("--password").arg(pw);
        }
        cmd.args(&self.args);
        let out = run_with_stdin(&mut cmd, &steps.to_string());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("mysql_steps.py printed a line that is not JSON ({e}): {l}\nstderr:\n{stderr}")
                })
            })
            .collect();
        StepsRun {
            status: out.status,
            stdout,
            stderr,
            lines,
        }
    }

    /// Runs `steps`; panics with the output unless the script ran them all
    /// (SQL errors are results, not failures: check them in the lines).
    pub fn steps(&self, steps: &serde_json::Value) -> StepsRun {
        let r = self.try_steps(steps);
        let want = steps.as_array().map_or(0, Vec::len);
        if !r.status.success() || r.lines.len() != want {
            panic!(
                "mysql_steps.py ({} as {} on port {}) failed with {} after {} of {want} steps{}\nstdout:\n{}\nstderr:\n{}",
                self.driver,
                self.user,
                self.port,
                r.status,
                r.lines.len(),
                if r.status.code() == Some(3) && self.port != MYSQL_DIRECT_PORT {
                    " (exit 3: could not connect — is the proxy's MySQL listener up?)"
                } else {
                    ""
                },
                r.stdout,
                r.stderr
            );
        }
        r
    }
}

/// The first place where two JSON values differ: (path, left, right), the
/// values rendered as JSON; `None` when equal. A path like
/// `.results[0].rows[3][1]`; `(length)` when two arrays differ in length
/// only after their common prefix is equal.
pub fn json_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    fn walk(a: &Value, b: &Value, path: &mut String) -> Option<(String, String, String)> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    let null = Value::Null;
                    let (va, vb) = (x.get(k), y.get(k));
                    if va.is_none() != vb.is_none() {
                        let show =
                            |v: Option<&Value>| v.map_or("<absent>".to_string(), Value::to_string);
                        return Some((path.clone(), show(va), show(vb)));
                    }
                    if let Some(d) = walk(va.unwrap_or(&null), vb.unwrap_or(&null), path) {
                        return Some(d);
                    }
                    path.truncate(len);
                }
                None
            }
            (Value::Array(x), Value::Array(y)) => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    if let Some(d) = walk(va, vb, path) {
                        return Some(d);
                    }
                    path.truncate(len);
                }
                if x.len() != y.len() {
                    return Some((
                        format!("{path} (length)"),
                        x.len().to_string(),
                        y.len().to_string(),
                    ));
                }
                None
            }
            _ if a == b => None,
            _ => Some((path.clone(), a.to_string(), b.to_string())),
        }
    }
    walk(a, b, &mut String::new())
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} chars)", s.chars().count())
}

/// Panics unless two runs of the same JSON-lines client (direct and through
/// danxia) printed the same lines; the message names the first differing
/// line, the path inside it, both values and both whole lines.
pub fn assert_same_json_lines(
    what: &str,
    direct: &[serde_json::Value],
    proxy: &[serde_json::Value],
) {
    for (i, (d, p)) in direct.iter().zip(proxy).enumerate() {
        if let Some((path, dv, pv)) = json_difference(d, p) {
            let label = d
                .get("label")
                .or_else(|| d.get("sql"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            panic!(
                "{what}: line {i} {label} differs at {path}:\n  direct: {}\n  danxia: {}\nwhole lines:\n  direct: {}\n  danxia: {}\n({} lines direct, {} through danxia)",
                clip(&dv, 600),
                clip(&pv, 600),
                clip(&d.to_string(), 3000),
                clip(&p.to_string(), 3000),
                direct.len(),
                proxy.len()
            );
        }
    }
    if direct.len() != proxy.len() {
        let n = direct.len().min(proxy.len());
        let extra = direct
            .get(n)
            .or_else(|| proxy.get(n))
            .map(|v| v.to_string())
            .unwrap_or_default();
        panic!(
            "{what}: {} lines direct but {} through danxia (the first {n} equal); first extra line: {}",
            direct.len(),
            proxy.len(),
            clip(&extra, 3000)
        );
    }
}

/// Panics unless two text outputs are equal, naming the first differing
/// line with both versions and the lines before it.
pub fn assert_same_text(what: &str, direct: &str, proxy: &str) {
    if direct == proxy {
        return;
    }
    let d: Vec<&str> = direct.lines().collect();
    let p: Vec<&str> = proxy.lines().collect();
    let i = d
        .iter()
        .zip(&p)
        .position(|(a, b)| a != b)
        .unwrap_or(d.len().min(p.len()));
    let context = d[i.saturating_sub(3)..i].join("\n");
    panic!(
        "{what}: outputs differ at line {} ({} lines direct, {} through danxia)\ncontext:\n{}\n  direct: {}\n  danxia: {}",
        i + 1,
        d.len(),
        p.len(),
        clip(&context, 2000),
        clip(d.get(i).copied().unwrap_or("<end of output>"), 2000),
        clip(p.get(i).copied().unwrap_or("<end of output>"), 2000)
    );
}

/// Compiles `tests/mysql/JdbcScript.java` against [`MARIADB_JDBC_JAR`] into
/// a fresh temporary directory (the class path for [`jdbc_script`]).
pub fn compile_jdbc_script() -> tempfile::TempDir {
    assert!(
        Path::new(MARIADB_JDBC_JAR).is_file(),
        "{MARIADB_JDBC_JAR} is missing: run tests/install-deps.sh (Debian: libmariadb-java)"
    );
    let dir = tempfile::Builder::new()
        .prefix("danxia-jdbc-")
        .tempdir()
        .expect("tempdir");
    run_ok(
        Command::new("javac")
            .arg("-encoding")
            .arg("UTF-8")
            .arg("-d")
            .arg(dir.path())
            .arg("-cp")
            .arg(MARIADB_JDBC_JAR)
            .arg(mysql_file("JdbcScript.java")),
    );
    dir
}

/// `java JdbcScript ARGS…` with the classes in `classes` (see
/// [`compile_jdbc_script`]).
pub fn jdbc_script(classes: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("java");
    c.arg("-Dfile.encoding=UTF-8")
        .arg("-cp")
        .arg(format!("{}:{MARIADB_JDBC_JAR}", classes.display()))
        .arg("JdbcScript")
        .args(args);
    c
}

/// The JDBC URL of the brief: MariaDB Connector/J with server-side prepared
/// statements, on `port`, as `user`.
pub fn jdbc_url(port: u16, user: &str, password: Option<&str>) -> String {
    let pw = password.map_or(String::new(), |p| format!("&password={p}"));
    format!("jdbc:mariadb://127.0.0.1:{port}/test?user={user}{pw}&useServerPrepStmts=true")
}

/// Statement events of the `mysql` listener.
pub fn mysql_statements(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "statement" && e["listener"] == "mysql")
        .collect()
}

// ----------------------------------------------------------------- HTTP side

/// How long [`Upstream::start`] waits for `READY <port>`.
pub const UPSTREAM_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// `tests/upstream/citizens_api.py` (the synthetic citizen-records API the
/// HTTP listener fronts) running on a free loopback port; killed on drop.
pub struct Upstream {
    pub port: u16,
    child: Option<Child>,
}

impl Upstream {
    /// Starts the upstream with `seed` and waits for its `READY <port>` line.
    pub fn start(seed: u64) -> Upstream {
        Upstream::start_args(seed, &[])
    }

    /// Starts the upstream serving HTTPS with `cert` and `key` (PEM).
    pub fn start_tls(seed: u64, cert: &Path, key: &Path) -> Upstream {
        let (c, k) = (cert.display().to_string(), key.display().to_string());
        Upstream::start_args(seed, &["--tls", &c, &k])
    }

    /// Starts the upstream with `seed` and `extra` arguments.
    pub fn start_args(seed: u64, extra: &[&str]) -> Upstream {
        let script = workspace_root().join("tests/upstream/citizens_api.py");
        let mut child = python()
            .arg(&script)
            .args(["--port", "0", "--seed", &seed.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the first line in a thread so that a silent, hung upstream
        // fails the test instead of blocking it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut r, &mut line);
            let _ = tx.send(line);
            // Keep the pipe open (and drained) for the upstream's lifetime.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(UPSTREAM_READY_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} printed no READY line within {UPSTREAM_READY_TIMEOUT:?}",
                    script.display()
                );
            }
        };
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{}: expected `READY <port>`, got {line:?}",
                    script.display()
                )
            });
        Upstream {
            port,
            child: Some(child),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET straight to the upstream (no proxy); panics if it cannot connect.
    pub fn get(&self, path: &str) -> (u16, String) {
        try_http_get(self.port, path)
            .unwrap_or_else(|e| panic!("GET {path} on the upstream (port {}): {e}", self.port))
    }

    /// The upstream's log of the requests it received (`GET /__requests`).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let (code, body) = self.get("/__requests");
        assert_eq!(code, 200, "/__requests: {body}");
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap_or_else(|e| panic!("/__requests is not a JSON array ({e}): {body}"))
    }

    /// Kills the upstream now (an "upstream down" test).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What one `curl` run gave: its exit code, the status code, the headers of
/// the last response, the body bytes and curl's own messages.
#[derive(Debug)]
pub struct CurlOut {
    pub exit: i32,
    /// 0 when no response arrived.
    pub status: u16,
    /// Lower-case names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl CurlOut {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {} exit {}: {}",
                self.status,
                self.exit,
                String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
            )
        })
    }
}

/// Runs the real `curl` with `args` (a URL among them): body on stdout,
/// headers to a temporary file (`-D`), the status code through `-w` on
/// stderr. `-s -S` are added; add `--compressed`, `--http2-prior-knowledge`,
/// `-H`, `-X`, `--data-binary` as needed.
pub fn curl(args: &[&str]) -> CurlOut {
    let hdr = tempfile::NamedTempFile::new().expect("header temp file");
    let mut c = Command::new("curl");
    c.args(["-s", "-S", "--max-time", "100", "-D"])
        .arg(hdr.path())
        .args(["-w", "%{stderr}\nDANXIA_E2E_STATUS=%{http_code}\n"])
        .args(args);
    let out = run(&mut c);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("DANXIA_E2E_STATUS="))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let raw = fs::read_to_string(hdr.path()).unwrap_or_default();
    // With informational responses (100 Continue) there are several
    // header blocks: keep the last one.
    let block = raw
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let headers = block
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    CurlOut {
        exit: out.status.code().unwrap_or(-1),
        status,
        headers,
        body: out.stdout,
        stderr,
    }
}

/// The resident set size of process `pid` in KiB (`VmRSS` of
/// `/proc/<pid>/status`); `None` once it is gone.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS")
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of `/proc/<pid>/status`; `None` once
/// the process is gone.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The peak resident set size of `pid` since it started, in KiB (`VmHWM`):
/// catches a transient blow-up that `VmRSS` read afterwards would miss.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM")
}

/// How many file descriptors `pid` has open (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// CPU time `pid` has used (user + system), in clock ticks (fields 14 and
/// 15 of `/proc/<pid>/stat`; 100 per second on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub mod mariadb_server;
pub mod pg_cluster;
pub mod relay;

/// A hand-written PostgreSQL frontend (protocol 3.0) for protocol-level tests:
/// message encoders, a frame reader, and a [`wire::RawSession`] that performs
/// a trust-auth startup and records the BackendKeyData the proxy hands out.
pub mod artifacts;
pub mod tls;

pub mod wire {
    use std::collections::BTreeMap;
    use std::io::{self, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    /// Protocol 3.0 version code.
    pub const PROTOCOL_3_0: i32 = 196608;
    /// SSLRequest code.
    pub const SSL_REQUEST: i32 = 80877103;
    /// GSSENCRequest code.
    pub const GSSENC_REQUEST: i32 = 80877104;
    /// CancelRequest code.
    pub const CANCEL_REQUEST: i32 = 80877102;

    /// One backend message: type byte and body (without the length).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Msg {
        pub tag: u8,
        pub body: Vec<u8>,
    }

    impl Msg {
        /// The tag as a char, for readable assertions.
        pub fn tag_char(&self) -> char {
            self.tag as char
        }

        /// ErrorResponse / NoticeResponse fields by code (`S`, `V`, `C`, `M`, ...).
        pub fn fields(&self) -> BTreeMap<char, String> {
            let mut m = BTreeMap::new();
            let mut i = 0;
            while i < self.body.len() && self.body[i] != 0 {
                let code = self.body[i] as char;
                i += 1;
                let end = self.body[i..]
                    .iter()
                    .position(|&b| b == 0)
                    .map(|p| p + i)
                    .unwrap_or(self.body.len());
                m.insert(
                    code,
                    String::from_utf8_lossy(&self.body[i..end]).into_owned(),
                );
                i = end + 1;
            }
            m
        }

        /// The SQLSTATE of an ErrorResponse.
        pub fn sqlstate(&self) -> Option<String> {
            self.fields().get(&'C').cloned()
        }

        /// DataRow columns as text (`None` for NULL).
        pub fn data_row(&self) -> Vec<Option<String>> {
            let b = &self.body;
            let n = i16::from_be_bytes([b[0], b[1]]) as usize;
            let mut i = 2;
            let mut cols = Vec::with_capacity(n);
            for _ in 0..n {
                let len = i32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                i += 4;
                if len < 0 {
                    cols.push(None);
                } else {
                    let len = len as usize;
                    cols.push(Some(String::from_utf8_lossy(&b[i..i + len]).into_owned()));
                    i += len;
                }
            }
            cols
        }

        /// CommandComplete tag text.
        pub fn command_tag(&self) -> String {
            cstr(&self.body)
        }
    }

    fn cstr(b: &[u8]) -> String {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    }

    fn push_cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A typed message: tag, i32 length (including itself), body.
    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(tag);
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// An untyped startup-phase packet: i32 length, i32 code, rest.
    pub fn startup_packet(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(rest.len() + 8);
        out.extend_from_slice(&((rest.len() + 8) as i32).to_be_bytes());
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    /// StartupMessage with `user`, `database` and extra parameters.
    pub fn startup(user: &str, database: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        startup_with_version(PROTOCOL_3_0, user, database, extra)
    }

    /// StartupMessage with an arbitrary protocol version code.
    pub fn startup_with_version(
        version: i32,
        user: &str,
        database: &str,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut rest = Vec::new();
        push_cstr(&mut rest, "user");
        push_cstr(&mut rest, user);
        push_cstr(&mut rest, "database");
        push_cstr(&mut rest, database);
        for (k, v) in extra {
            push_cstr(&mut rest, k);
            push_cstr(&mut rest, v);
        }
        rest.push(0);
        startup_packet(version, &rest)
    }

    pub fn ssl_request() -> Vec<u8> {
        startup_packet(SSL_REQUEST, &[])
    }

    pub fn gssenc_request() -> Vec<u8> {
        startup_packet(GSSENC_REQUEST, &[])
    }

    pub fn cancel_request(pid: i32, key: i32) -> Vec<u8> {
        let mut rest = Vec::new();
        rest.extend_from_slice(&pid.to_be_bytes());
        rest.extend_from_slice(&key.to_be_bytes());
        startup_packet(CANCEL_REQUEST, &rest)
    }

    /// Simple Query.
    pub fn query(sql: &str) -> Vec<u8> {
        let mut b = Vec::new();
        push_cstr(&mut b, sql);
        message(b'Q', &b)
    }

    /// Parse with no declared parameter types.
    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        let mut b = Vec::new();
        push_cstr(&mut b, name);
        push_cstr(&mut b, sql);
        b.extend_from_slice(&0i16.to_be_bytes());
        message(b'P', &b)
    }

    /// Bind with text-format parameters (`None` = NULL) and text results.
    pub fn bind(portal: &str, statement: &str, params: &[Option<&str>]) -> Vec<u8> {
        let mut b = Vec::new();
        push_cstr(&mut b, portal);
        push_cstr(&mut b, statement);
        b.extend_from_slice(&0i16.to_be_bytes()); // all parameters text
        b.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
            }
        }
        b.extend_from_slice(&0i16.to_be_bytes()); // all results text
        message(b'B', &b)
    }

    /// Bind with explicit result format codes (0 text, 1 binary; none = all
    /// text, one = all, else one per column); parameters in text.
    pub fn bind_formats(
        portal: &str,
        statement: &str,
        params: &[Option<&str>],
        result_formats: &[i16],
    ) -> Vec<u8> {
        let mut m = bind(portal, statement, params);
        // Drop the trailing "0 result formats" and write ours.
        m.truncate(m.len() - 2);
        m.extend_from_slice(&(result_formats.len() as i16).to_be_bytes());
        for f in result_formats {
            m.extend_from_slice(&f.to_be_bytes());
        }
        let len = (m.len() - 1) as i32;
        m[1..5].copy_from_slice(&len.to_be_bytes());
        m
    }

    /// Describe a statement (`S`) or portal (`P`).
    pub fn describe(kind: u8, name: &str) -> Vec<u8> {
        let mut b = vec![kind];
        push_cstr(&mut b, name);
        message(b'D', &b)
    }

    /// Execute a portal (0 = all rows).
    pub fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
        let mut b = Vec::new();
        push_cstr(&mut b, portal);
        b.extend_from_slice(&max_rows.to_be_bytes());
        message(b'E', &b)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }

    pub fn flush() -> Vec<u8> {
        message(b'H', &[])
    }

    pub fn terminate() -> Vec<u8> {
        message(b'X', &[])
    }

    /// Reads one typed backend message.
    pub fn read_msg(s: &mut impl Read) -> io::Result<Msg> {
        let mut head = [0u8; 5];
        s.read_exact(&mut head)?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if !(4..=(1 << 30)).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad length {len} for tag {:?}", head[0] as char),
            ));
        }
        let mut body = vec![0u8; len as usize - 4];
        s.read_exact(&mut body)?;
        Ok(Msg { tag: head[0], body })
    }

    /// Reads one byte (the answer to SSLRequest / GSSENCRequest).
    pub fn read_byte(s: &mut impl Read) -> io::Result<u8> {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        Ok(b[0])
    }

    /// True once the peer has closed the socket (EOF, or a reset), reading
    /// and discarding anything still buffered, within `timeout`.
    pub fn wait_closed(s: &mut TcpStream, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = s.set_read_timeout(Some(left));
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// A raw protocol session that did a trust-auth startup.
    pub struct RawSession {
        pub stream: TcpStream,
        /// The BackendKeyData the server (the proxy) sent: (pid, secret).
        pub key: Option<(i32, i32)>,
        /// ParameterStatus values received at startup.
        pub params: BTreeMap<String, String>,
    }

    impl RawSession {
        /// Connects to 127.0.0.1:`port` and starts up as `user`/`database`.
        pub fn connect(port: u16, user: &str, database: &str) -> io::Result<RawSession> {
            let stream = TcpStream::connect(("127.0.0.1", port))?;
            RawSession::startup_on(stream, user, database, &[])
        }

        /// Performs the startup on an already connected stream (e.g. after an
        /// SSLRequest answered 'N').
        pub fn startup_on(
            mut stream: TcpStream,
            user: &str,
            database: &str,
            extra: &[(&str, &str)],
        ) -> io::Result<RawSession> {
            stream.set_read_timeout(Some(Duration::from_secs(15)))?;
            stream.set_nodelay(true)?;
            stream.write_all(&startup(user, database, extra))?;
            let mut sess = RawSession {
                stream,
                key: None,
                params: BTreeMap::new(),
            };
            loop {
                let m = read_msg(&mut sess.stream)?;
                match m.tag {
                    b'R' => {
                        let code = i32::from_be_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]);
                        if code != 0 {
                            return Err(io::Error::other(format!(
                                "authentication request {code}: the raw client only does trust"
                            )));
                        }
                    }
                    b'K' => {
                        let b = &m.body;
                        sess.key = Some((
                            i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                            i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                        ));
                    }
                    b'S' => {
                        let k = cstr(&m.body);
                        let v = cstr(&m.body[k.len() + 1..]);
                        sess.params.insert(k, v);
                    }
                    b'Z' => return Ok(sess),
                    b'E' => {
                        return Err(io::Error::other(format!(
                            "startup ErrorResponse: {:?}",
                            m.fields()
                        )))
                    }
                    b'N' => {}
                    other => {
                        return Err(io::Error::other(format!(
                            "unexpected message {:?} during startup",
                            other as char
                        )))
                    }
                }
            }
        }

        pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.stream.write_all(bytes)
        }

        pub fn recv(&mut self) -> io::Result<Msg> {
            read_msg(&mut self.stream)
        }

        /// Reads messages up to and including the next ReadyForQuery.
        pub fn read_until_ready(&mut self) -> io::Result<Vec<Msg>> {
            let mut out = Vec::new();
            loop {
                let m = self.recv()?;
                let done = m.tag == b'Z';
                out.push(m);
                if done {
                    return Ok(out);
                }
            }
        }

        /// Sends a simple Query and returns everything up to ReadyForQuery.
        pub fn simple_query(&mut self, sql: &str) -> io::Result<Vec<Msg>> {
            self.send(&query(sql))?;
            self.read_until_ready()
        }

        /// Sends Terminate and closes.
        pub fn terminate(mut self) {
            let _ = self.stream.write_all(&terminate());
        }
    }

    /// The tags of `msgs` as a string, e.g. "12CZ" — compact order assertions.
    pub fn tags(msgs: &[Msg]) -> String {
        msgs.iter().map(|m| m.tag as char).collect()
    }
}

/// A fixed-offset IANA zone in which it is about noon now: quiet hours
/// (the pack's `night = "00:00-06:00"`, dept-health `night = "deny"`) must
/// not decide tests that run at any hour.
pub fn daytime_zone() -> String {
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        / 3600
        % 24) as i64;
    let offset = 12 - hour; // local = UTC + offset, in -11..=12
    match offset {
        0 => "Etc/GMT".into(),
        // POSIX sign: Etc/GMT-8 is UTC+8.
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Runs `danxia run --config <file>` with `text` as the file (in a fresh
/// directory, also the working directory) for a configuration that must
/// not start; returns (exit code, stderr + stdout, the file's path).
pub fn run_config(text: &str) -> (Option<i32>, String, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    fs::write(&path, text).expect("write");
    let out = run(Command::new(bin_path())
        .arg("run")
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path()));
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // Keep the path's text for messages; the directory goes away here.
    (out.status.code(), stderr, path)
}

/// `danxia api key add CALLER --keys FILE`: (key, key id), asserting the key is printed alone on stdout.
pub fn api_key_add(keys_file: &Path, caller: &str) -> (String, String) {
    let out = run(Command::new(bin_path())
        .args(["api", "key", "add", caller, "--keys"])
        .arg(keys_file));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "danxia api key add {caller}: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "the key alone on one line: {stdout:?}");
    artifacts::register_secret(lines[0]);
    // "danxia api key: key <id> for caller <caller> added to …"
    let words: Vec<&str> = stderr.split_whitespace().collect();
    let id = words
        .windows(3)
        .find(|w| w[0] == "key" && w[2] == "for")
        .map(|w| w[1].to_string())
        .unwrap_or_else(|| panic!("no key id in: {stderr}"));
    (lines[0].trim().to_string(), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP danxia_statements_total Statements.
# TYPE danxia_statements_total counter
danxia_statements_total{listener=\"pg\",operation=\"select\",outcome=\"ok\"} 3
danxia_statements_total{listener=\"pg\",operation=\"ddl\",outcome=\"ok\"} 1
danxia_statements_total{listener=\"other\",operation=\"select\",outcome=\"error\"} 2
danxia_audit_healthy 1
danxia_build_info{version=\"0.1.0\"} 1
danxia_odd{l=\"a \\\"quoted\\\" } value\"} 7
danxia_statement_duration_seconds_bucket{listener=\"pg\",le=\"+Inf\"} 4
";

    #[test]
    fn metric_sum_filters_by_name_and_labels() {
        assert_eq!(metric_sum(TEXT, "danxia_statements_total", &[]), Some(6.0));
        assert_eq!(
            metric_sum(TEXT, "danxia_statements_total", &[("listener", "pg")]),
            Some(4.0)
        );
        assert_eq!(
            metric_sum(
                TEXT,
                "danxia_statements_total",
                &[("listener", "pg"), ("operation", "ddl")]
            ),
            Some(1.0)
        );
        assert_eq!(
            metric_sum(TEXT, "danxia_statements_total", &[("listener", "nope")]),
            None
        );
        assert_eq!(metric_sum(TEXT, "danxia_audit_healthy", &[]), Some(1.0));
        assert_eq!(
            metric_sum(TEXT, "danxia_build_info", &[("version", "0.1.0")]),
            Some(1.0)
        );
        assert_eq!(
            metric_sum(TEXT, "danxia_odd", &[("l", "a \"quoted\" } value")]),
            Some(7.0)
        );
        assert_eq!(
            metric_sum(
                TEXT,
                "danxia_statement_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(4.0)
        );
        assert_eq!(
            metric_sum(TEXT, "danxia_statements", &[]),
            None,
            "prefix is not a match"
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(),
            Some("abcde")
        );
        assert_eq!(dechunk("zz\r\n"), None);
    }

    #[test]
    fn options_splice_table_keys() {
        let o = Options {
            max_message_bytes: Some(1024),
            limits: vec![
                ("startup_timeout".into(), "\"1s\"".into()),
                ("max_message_bytes".into(), "2048".into()),
            ],
            statement_text: Some("none".into()),
            ..Options::default()
        };
        let t = o.to_toml(1, 2, 3, Path::new("/tmp/a\"b"));
        assert_eq!(t.matches("[limits]").count(), 1);
        assert!(t.contains("startup_timeout = \"1s\"\n"));
        assert!(
            t.contains("max_message_bytes = 2048\n") && !t.contains("max_message_bytes = 1024")
        );
        assert!(t.contains("statement_text = \"none\"\n"));
        assert!(t.contains("dir = \"/tmp/a\\\"b\"\n"));
        assert!(
            t.contains("listen = \"127.0.0.1:1\"\n") && t.contains("listen = \"127.0.0.1:2\"\n")
        );
        assert!(
            !t.contains("protocol = \"mysql\""),
            "no MySQL listener unless asked"
        );
    }

    #[test]
    fn options_add_the_mysql_listener() {
        let o = Options {
            mysql: true,
            mysql_listener_toml: "mode = \"monitor\"".into(),
            extra_toml: "[policy]\nmode = \"enforce\"".into(),
            ..Options::default()
        };
        let t = o.to_toml(1, 2, 3, Path::new("/tmp/audit"));
        let at = t.find("name = \"mysql\"").expect("mysql listener");
        let table = &t[at..t.find("[policy]").expect("policy after the listeners")];
        assert!(table.contains("protocol = \"mysql\"\n"), "{t}");
        assert!(table.contains("listen = \"127.0.0.1:3\"\n"), "{t}");
        assert!(table.contains("backend = \"127.0.0.1:3306\"\n"), "{t}");
        assert!(table.contains("mode = \"monitor\"\n"), "{t}");
        assert_eq!(t.matches("[[listener]]").count(), 2, "{t}");
    }

    #[test]
    fn mysql_json_differences_name_the_path() {
        let a = serde_json::json!({"rows": [[1, "x"], [2, "y"]], "n": 2});
        let b = serde_json::json!({"rows": [[1, "x"], [2, "z"]], "n": 2});
        let (path, da, db) = json_difference(&a, &b).expect("differs");
        assert_eq!(path, ".rows[1][1]");
        assert_eq!((da.as_str(), db.as_str()), ("\"y\"", "\"z\""));
        assert!(json_difference(&a, &a).is_none());
        let c = serde_json::json!({"rows": [[1, "x"]], "n": 2});
        assert_eq!(
            json_difference(&a, &c).expect("differs").0,
            ".rows (length)"
        );
        let d = serde_json::json!({"rows": [[1, "x"], [2, "y"]], "n": 2, "extra": true});
        assert_eq!(json_difference(&a, &d).expect("differs").0, ".extra");
    }
}
