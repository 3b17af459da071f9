//! A throw-away MariaDB server of a test's own (for a server the test may
//! stop and start again; the shared one on 3306 must never be touched):
//! `mariadb-install-db` into a temporary directory, `mariadbd` as the
//! `mysql` OS user on a free port with its socket in that directory, root
//! without a password (reached over TCP as `root@localhost`) and a `test`
//! database. About 4 s to create on a 2-core machine. Dropping it kills the
//! server and removes the directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, mariadb, run, run_ok};

/// How long a start or a stop may take.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PrivateMariaDb {
    pub port: u16,
    data: PathBuf,
    child: Option<Child>,
    /// Dropped after the server is gone.
    dir: tempfile::TempDir,
}

impl PrivateMariaDb {
    /// Creates and starts the server; panics (saying what to install) if
    /// the MariaDB server binaries are missing.
    pub fn start() -> PrivateMariaDb {
        let dir = tempfile::Builder::new()
            .prefix("danxia-mariadb-")
            .tempdir_in("/tmp")
            .expect("temp dir for the private MariaDB");
        run_ok(Command::new("chown").arg("mysql:").arg(dir.path()));
        let data = dir.path().join("data");
        let out = run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]));
        assert!(
            out.status.success(),
            "mariadb-install-db failed (apt-get install -y mariadb-server): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = PrivateMariaDb {
            port: free_port(),
            data,
            child: None,
            dir,
        };
        m.start_again();
        run_ok(mariadb(m.port, "root", None, "mysql").args(["-e", "create database test"]));
        m
    }

    /// Starts the server (again, on the same port) and waits until it
    /// answers.
    pub fn start_again(&mut self) {
        let d = self.dir.path();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--user=mysql",
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd (apt-get install -y mariadb-server)");
        self.child = Some(child);
        let deadline = Instant::now() + SERVER_TIMEOUT;
        loop {
            let out = run(mariadb(self.port, "root", None, "mysql").args(["-e", "select 1"]));
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private MariaDB did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM: a normal shutdown) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = run(Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string()));
        let deadline = Instant::now() + SERVER_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the private MariaDB did not stop: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
