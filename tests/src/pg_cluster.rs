//! A throw-away PostgreSQL 15 cluster of a test's own, for what the shared
//! server on 5432 cannot give: other authentication methods, TLS, or a
//! server the test may stop and restart. initdb refuses to run as root, so
//! the cluster runs as the `postgres` OS user (`runuser`) in a temporary
//! directory owned by it, on a free port, with its socket in that
//! directory; a Drop guard stops it even when the test panics.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{free_port, run, run_ok};

/// Where the PostgreSQL 15 server binaries live (Debian's postgresql-15).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// `runuser -u postgres -- <PG_BIN>/<tool>`, run in `dir`.
pub fn as_postgres(dir: &Path, tool: &str) -> Command {
    let bin = Path::new(PG_BIN).join(tool);
    assert!(
        bin.is_file(),
        "{} not found: install PostgreSQL 15 server binaries (apt-get install -y postgresql-15)",
        bin.display()
    );
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin).current_dir(dir);
    c
}

/// A running private cluster.
pub struct PgCluster {
    pub data: PathBuf,
    pub port: u16,
    /// Dropped after `Drop::drop` has stopped the server.
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// initdb (trust, user `postgres`, UTF8, C locale) and start a cluster
    /// in a fresh `/tmp/<prefix>*` directory. `files` are copied into that
    /// directory first (e.g. TLS certificates); `conf` is appended to
    /// postgresql.conf with `{dir}` standing for the directory; `hba` lines
    /// come after `local all all trust` and before a final
    /// `host all all 127.0.0.1/32 trust`.
    pub fn start(prefix: &str, files: &[(&Path, &str)], conf: &str, hba: &str) -> PgCluster {
        let id = run(Command::new("id").args(["-u", "postgres"]));
        assert!(
            id.status.success(),
            "this test needs the `postgres` OS user (created by the postgresql-15 package): {}",
            String::from_utf8_lossy(&id.stderr)
        );
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("create temp dir for the cluster");
        for (src, name) in files {
            fs::copy(src, dir.path().join(name))
                .unwrap_or_else(|e| panic!("copy {} into the cluster: {e}", src.display()));
        }
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(dir.path()),
        );
        let data = dir.path().join("data");
        run_ok(
            as_postgres(dir.path(), "initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "-N",
                ]),
        );
        let port = free_port();
        let d = dir.path().display().to_string();
        let mut text =
            fs::read_to_string(data.join("postgresql.conf")).expect("read postgresql.conf");
        text.push_str(&format!(
            "\n# danxia e2e private cluster\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{d}'\nfsync = off\nmax_connections = 20\n\
             shared_buffers = 16MB\n{}\n",
            conf.replace("{dir}", &d)
        ));
        fs::write(data.join("postgresql.conf"), text).expect("write postgresql.conf");
        fs::write(
            data.join("pg_hba.conf"),
            format!("local all all trust\n{hba}host all all 127.0.0.1/32 trust\n"),
        )
        .expect("write pg_hba.conf");
        let cluster = PgCluster { data, port, dir };
        cluster.pg_ctl(&["start"]);
        cluster
    }

    /// `pg_ctl -w -t 30 -D <data> -l <log> ARGS` as postgres; panics on failure.
    pub fn pg_ctl(&self, args: &[&str]) {
        run_ok(
            as_postgres(self.dir.path(), "pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(self.dir.path().join("postgres.log"))
                .args(args),
        );
    }

    /// Stops the server (`-m fast`: sessions get FATAL 57P01).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let out = run(as_postgres(self.dir.path(), "pg_ctl")
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop"));
        if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("not running") {
            eprintln!(
                "stopping the private cluster in {} failed: {}",
                self.data.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
