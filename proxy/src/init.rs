//! `danxia init`: writes a commented starter configuration and a copy of the
//! default policy pack into a directory, so that a DBA deploying danxia in
//! front of an existing database starts from a file that already runs and
//! whose every choice is explained where it is made.
//!
//! Owns the starter template and the embedded pack. Must never overwrite an
//! operator's file without `--force`, and never leaves a configuration behind
//! that `danxia run` would refuse: the written files are loaded and the
//! policy compiled before `init` reports success.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use danxia_policies::{LoadOptions, Policy};

use crate::config::{parse_host_port, Config};
use crate::files::write_atomically;

/// The starter configuration, with `@NAME@` placeholders.
const STARTER: &str = include_str!("init/starter.toml");

/// The default policy pack, embedded so that an installed binary can write
/// it without the source tree. `pack_is_complete` (test) keeps this list in
/// step with `policies/packs/default/`.
const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "00-policy.toml",
        include_str!("../../policies/packs/default/00-policy.toml"),
    ),
    (
        "10-alerts.toml",
        include_str!("../../policies/packs/default/10-alerts.toml"),
    ),
    (
        "20-secrets.toml",
        include_str!("../../policies/packs/default/20-secrets.toml"),
    ),
    (
        "30-server-access.toml",
        include_str!("../../policies/packs/default/30-server-access.toml"),
    ),
    (
        "40-injection.toml",
        include_str!("../../policies/packs/default/40-injection.toml"),
    ),
    (
        "50-changes.toml",
        include_str!("../../policies/packs/default/50-changes.toml"),
    ),
    (
        "60-admins.toml",
        include_str!("../../policies/packs/default/60-admins.toml"),
    ),
];

/// What `danxia init` was asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where `danxia.toml` and `policies/` go (e.g. `/etc/danxia`).
    pub dir: PathBuf,
    /// Where the audit log, baselines and allowlist go (default `DIR/var`;
    /// e.g. `/var/lib/danxia`).
    pub state_dir: Option<PathBuf>,
    /// PostgreSQL server to protect (`host:port`), if any.
    pub postgres: Option<String>,
    /// Address the PostgreSQL listener binds.
    pub postgres_listen: String,
    /// MySQL / MariaDB server to protect (`host:port`), if any.
    pub mysql: Option<String>,
    /// Address the MySQL listener binds.
    pub mysql_listen: String,
    /// Address of the admin endpoint (metrics, health, sessions).
    pub admin_listen: String,
    /// `learn`, `monitor` or `enforce`.
    pub mode: String,
    /// IANA time zone for behaviour baselines (hours of activity).
    pub timezone: String,
    /// Overwrite existing files.
    pub force: bool,
}

/// What was written, for the summary `init` prints.
#[derive(Debug)]
pub struct Written {
    pub config: PathBuf,
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub listeners: Vec<String>,
}

/// Writes the starter files. Errors are sentences for the operator.
pub fn init(o: &InitOptions) -> Result<Written, String> {
    if !matches!(o.mode.as_str(), "learn" | "monitor" | "enforce") {
        return Err(format!(
            "--mode {:?}: expected learn, monitor or enforce",
            o.mode
        ));
    }
    if o.postgres.is_none() && o.mysql.is_none() {
        return Err(
            "nothing to protect: give --postgres HOST:PORT and/or --mysql HOST:PORT".into(),
        );
    }
    for (flag, v) in [("--postgres", &o.postgres), ("--mysql", &o.mysql)] {
        if let Some(v) = v {
            parse_host_port(v).map_err(|e| format!("{flag} {v:?}: {e}"))?;
        }
    }
    // Listening addresses are bound, not resolved: an IP address and port.
    for (flag, v) in [
        ("--postgres-listen", &o.postgres_listen),
        ("--mysql-listen", &o.mysql_listen),
        ("--admin-listen", &o.admin_listen),
    ] {
        v.parse::<std::net::SocketAddr>().map_err(|_| {
            format!("{flag} {v:?}: expected an IP address and port, e.g. 127.0.0.1:6543")
        })?;
    }
    if jiff::tz::TimeZone::get(&o.timezone).is_err() {
        return Err(format!(
            "--timezone {:?}: not an IANA time zone name (e.g. Asia/Shanghai)",
            o.timezone
        ));
    }

    let dir = absolute(&o.dir)?;
    let state = absolute(&o.state_dir.clone().unwrap_or_else(|| dir.join("var")))?;
    let config = dir.join("danxia.toml");
    let policy_dir = dir.join("policies");

    let targets: Vec<PathBuf> = std::iter::once(config.clone())
        .chain(DEFAULT_PACK.iter().map(|(name, _)| policy_dir.join(name)))
        .collect();
    if !o.force {
        let existing: Vec<String> = targets
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "would overwrite {}; keep them, choose another directory, or pass --force",
                existing.join(", ")
            ));
        }
    }

    let mut listeners = String::new();
    let mut summary = Vec::new();
    if let Some(backend) = &o.postgres {
        write_listener(
            &mut listeners,
            "pg",
            "postgres",
            &o.postgres_listen,
            backend,
            "psql -h HOST -p PORT: the same users, passwords and databases as the server behind",
        );
        summary.push(format!("pg {} -> {backend}", o.postgres_listen));
    }
    if let Some(backend) = &o.mysql {
        write_listener(
            &mut listeners,
            "mysql",
            "mysql",
            &o.mysql_listen,
            backend,
            "mariadb -h HOST -P PORT: the same accounts as the server behind",
        );
        summary.push(format!("mysql {} -> {backend}", o.mysql_listen));
    }

    let text = STARTER
        .replace("@DATE@", &jiff::Zoned::now().date().to_string())
        .replace("@CONFIG@", &config.display().to_string())
        .replace("@STATE@", &toml_path(&state))
        .replace("@POLICY@", &toml_path(&policy_dir))
        .replace("@MODE@", &o.mode)
        .replace("@ADMIN@", &o.admin_listen)
        .replace("@TZ@", &o.timezone)
        .replace("@LISTENERS@", &listeners);

    // Validate before anything lands on disk: a starter that `run` refuses
    // would be worse than none.
    let parsed = Config::parse(&text, &config).map_err(|e| {
        format!("internal error: the starter configuration does not parse ({e}); please report it")
    })?;
    drop(parsed);

    mkdir(&dir, 0o755)?;
    mkdir(&policy_dir, 0o755)?;
    mkdir(&state, 0o700)?;
    for (name, body) in DEFAULT_PACK {
        write_file(&policy_dir.join(name), body, 0o644)?;
    }
    write_file(&config, &text, 0o640)?;

    let opts = LoadOptions {
        dir: policy_dir.clone(),
        classification: None,
        allowlist: None,
        mask_key: None,
    };
    if let Err(d) = Policy::load(&opts) {
        return Err(format!(
            "the written policy in {} does not load:\n{d}",
            policy_dir.display()
        ));
    }

    Ok(Written {
        config,
        policy_dir,
        state_dir: state,
        listeners: summary,
    })
}

fn write_listener(
    out: &mut String,
    name: &str,
    protocol: &str,
    listen: &str,
    backend: &str,
    how: &str,
) {
    let _ = write!(
        out,
        "[[listener]]\n\
         # Clients connect here ({how}).\n\
         name = \"{name}\"\n\
         protocol = \"{protocol}\"\n\
         listen = \"{listen}\"\n\
         # The server danxia protects. Firewall it so that only danxia (and\n\
         # your break-glass path) can reach it, or danxia can be bypassed.\n\
         backend = \"{backend}\"\n\n"
    );
}

/// A path as a TOML basic-string body (backslashes and quotes escaped).
fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes whole-or-nothing, then sets the mode (the config holds no
/// secret, but nothing in it is for other local users to change).
fn write_file(p: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    write_atomically(p, text)
        .and_then(|()| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("cannot write {}: {e}", p.display()))
}

fn mkdir(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .map_err(|e| format!("cannot create {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> InitOptions {
        InitOptions {
            dir: dir.to_path_buf(),
            state_dir: None,
            postgres: Some("127.0.0.1:5432".into()),
            postgres_listen: "127.0.0.1:6543".into(),
            mysql: Some("db.example:3306".into()),
            mysql_listen: "0.0.0.0:3307".into(),
            admin_listen: "127.0.0.1:9898".into(),
            mode: "learn".into(),
            timezone: "Asia/Shanghai".into(),
            force: false,
        }
    }

    #[test]
    fn pack_is_complete() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/packs/default");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = DEFAULT_PACK.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            embedded, on_disk,
            "DEFAULT_PACK must list every file of policies/packs/default"
        );
    }

    #[test]
    fn writes_a_config_that_loads_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let w = init(&opts(tmp.path())).unwrap();
        let mut cfg = Config::load(&w.config).unwrap();
        cfg.resolve_paths(Path::new("/nonexistent"));
        assert_eq!(cfg.listeners.len(), 2);
        assert_eq!(cfg.listeners[1].backend, "db.example:3306");
        assert_eq!(cfg.audit.dir, tmp.path().join("var/audit"));
        let p = cfg.policy.unwrap();
        assert_eq!(p.dir, tmp.path().join("policies"));
        assert_eq!(p.mode, danxia_policies::Mode::Learn);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("var"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        let again = init(&opts(tmp.path())).unwrap_err();
        assert!(
            again.contains("--force") && again.contains("danxia.toml"),
            "{again}"
        );
        let mut forced = opts(tmp.path());
        forced.force = true;
        forced.mysql = None;
        init(&forced).unwrap();
        assert_eq!(Config::load(&w.config).unwrap().listeners.len(), 1);
    }

    #[test]
    fn refuses_bad_arguments_with_the_flag_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = opts(tmp.path());
        o.mode = "block".into();
        assert!(init(&o).unwrap_err().contains("--mode"));
        let mut o = opts(tmp.path());
        o.postgres = Some("nohost".into());
        assert!(init(&o).unwrap_err().contains("--postgres"));
        let mut o = opts(tmp.path());
        o.admin_listen = "localhost:9898".into();
        assert!(init(&o).unwrap_err().contains("--admin-listen"));
        let mut o = opts(tmp.path());
        o.timezone = "Mars/Olympus".into();
        assert!(init(&o).unwrap_err().contains("--timezone"));
        let mut o = opts(tmp.path());
        o.postgres = None;
        o.mysql = None;
        assert!(init(&o).unwrap_err().contains("nothing to protect"));
        assert!(
            std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
            "a refused init writes nothing"
        );
    }
}
