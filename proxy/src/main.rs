//! `danxia` — database firewall and API data-sharing risk monitor.
//!
//! This file is the binary's edge: command-line parsing, logging set-up,
//! the tokio runtime, and exit codes (0 ok, 1 failure or tampered audit,
//! 2 unusable configuration or usage). Everything else lives in modules.

#![forbid(unsafe_code)]

use danxia::{audit, cli, config, discover, server};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "danxia",
    version,
    about = "danxia: database firewall and API data-sharing risk monitor",
    long_about = "danxia is an inline, protocol-aware proxy in front of PostgreSQL. It forwards \
every statement, audits each one into a hash-chained JSON Lines log, and exports Prometheus \
metrics.\n\nWith no command it runs with ./danxia.toml, as `danxia run` does.",
    after_help = "Examples:\n  danxia run --config /etc/danxia/danxia.toml\n  danxia audit verify var/audit\n  danxia audit search --user alice --since 2h\n  danxia check policies/packs/default\n  danxia explain --user app --db test \"select * from pg_shadow\"\n  danxia explain --protocol mysql --user app --db test \"select * from t into outfile '/tmp/x'\"\n  danxia discover --dsn postgres://postgres@127.0.0.1:5432/test --out classification.toml\n\nLogging: set DANXIA_LOG (e.g. DANXIA_LOG=debug), default info; DANXIA_LOG_FORMAT=json for JSON logs."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// File with the admin API token, for the commands that ask the
    /// running proxy (default: admin.token_file of the configuration).
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default command).
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// Write a commented starter configuration and a copy of the default
    /// policy pack into DIR, ready for `danxia check` and `danxia run`.
    /// Refuses to overwrite files without --force. Exit 0 written, 2 refused.
    Init {
        /// Directory for danxia.toml and policies/ (e.g. /etc/danxia).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Directory for the audit log, baselines and allowlist (e.g.
        /// /var/lib/danxia); default DIR/var.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// PostgreSQL server to protect.
        #[arg(long, value_name = "HOST:PORT")]
        postgres: Option<String>,
        /// Address the PostgreSQL listener binds.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6543")]
        postgres_listen: String,
        /// MySQL / MariaDB server to protect.
        #[arg(long, value_name = "HOST:PORT")]
        mysql: Option<String>,
        /// Address the MySQL listener binds.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3307")]
        mysql_listen: String,
        /// Address of the admin endpoint (/metrics, /healthz, sessions).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9898")]
        admin_listen: String,
        /// Policy mode to start in: learn (record, never block), monitor
        /// (decide and alert, never block) or enforce.
        #[arg(long, default_value = "learn", value_parser = ["learn", "monitor", "enforce"])]
        mode: String,
        /// Time zone of the behaviour baselines' hours.
        #[arg(long, default_value = "Asia/Shanghai")]
        timezone: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Behaviour baselines: what danxia has learned of each identity.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Identities a rule (or a person) quarantined.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// The API data-sharing side: import an OpenAPI document, manage API
    /// keys, suspend or resume a caller.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// Live database sessions of the running proxy: list them, kill one.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Alerts of the running proxy.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Validate a policy directory: syntax, unknown keys, bad addresses and
    /// time windows, duplicate ids, rules that can never decide. Exit 0
    /// valid (warnings allowed), 1 errors, 2 unusable arguments.
    Check {
        /// Policy directory; default: policy.dir of the configuration.
        dir: Option<PathBuf>,
        /// Configuration file (for policy.dir, classification, allowlist).
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
        /// Classification file to validate with the policy.
        #[arg(long)]
        classification: Option<PathBuf>,
        /// Learned allowlist to validate with the policy.
        #[arg(long)]
        allowlist: Option<PathBuf>,
        /// Validate this API scope policy directory instead (the `http`
        /// listeners' `api_policy`).
        #[arg(long, value_name = "DIR")]
        api: Option<PathBuf>,
    },
    /// Show a statement's facts and the rule trace that decides it. Exit 0
    /// when every statement is allowed, 1 when one is refused.
    Explain {
        /// Database user the statement runs as.
        #[arg(long)]
        user: String,
        /// Database.
        #[arg(long = "db")]
        database: String,
        /// application_name.
        #[arg(long = "app", default_value = "")]
        application: String,
        /// Client address.
        #[arg(long = "addr")]
        address: Option<std::net::IpAddr>,
        /// Mode to apply (default: policy.mode of the configuration).
        #[arg(long, value_parser = ["learn", "monitor", "enforce"])]
        mode: Option<String>,
        /// Policy directory instead of the configuration's policy.dir.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Configuration file.
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
        /// Wire protocol whose SQL dialect applies.
        #[arg(long, default_value = "postgres", value_parser = ["postgres", "mysql"])]
        protocol: String,
        /// The SQL (several statements are judged one by one).
        sql: String,
    },
    /// Find the columns that hold personal data: read the catalogue,
    /// sample rows of every table, and write or merge into a
    /// classification file (hand edits are kept). See docs/discovery.md.
    /// Exit 0 done, 1 the classification file could not be merged, 2
    /// unusable arguments or connection.
    Discover {
        /// The database: postgres://USER[:PASS]@HOST[:PORT]/DB or
        /// mysql://USER[:PASS]@HOST[:PORT][/DB] (no DB: every non-system
        /// database). Without a password, PGPASSWORD / MYSQL_PWD is used.
        #[arg(long)]
        dsn: String,
        /// Rows sampled per table at most (0: column names only).
        #[arg(long, default_value_t = discover::DEFAULT_SAMPLE_ROWS)]
        sample: u64,
        /// Classification file to create or merge into (default: print the
        /// result to stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only this schema (PostgreSQL) or database (MySQL); repeatable.
        #[arg(long = "schema", value_name = "SCHEMA")]
        schemas: Vec<String>,
        /// Share of sampled values (0 to 1) that must hold a kind for the
        /// column to be tagged on content alone.
        #[arg(long, default_value_t = discover::DEFAULT_MIN_RATIO)]
        min_ratio: f64,
    },
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Write an API scope policy skeleton (routes, query parameters,
    /// record paths, a commented example caller with its fields and
    /// suggested masks) from an OpenAPI 3 document (YAML or JSON).
    Import {
        /// The OpenAPI document.
        openapi: PathBuf,
        /// Write here instead of stdout (e.g. policies/api/10-routes.toml).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Show which route, grant and rule decide a caller's request, and
    /// why (exit 0 allowed, 1 refused), without sending it.
    Explain {
        /// The caller id (as authentication yields it).
        #[arg(long)]
        caller: String,
        /// The method, e.g. GET.
        method: String,
        /// The request target: path and query, e.g. "/api/v1/persons?page=1".
        target: String,
        /// Request body size in bytes.
        #[arg(long)]
        body: Option<u64>,
        /// Local time of day as minutes after midnight (default: now).
        #[arg(long)]
        minute: Option<u16>,
        /// API policy directory (default: the configuration's http listener's api_policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// API keys: `add CALLER` prints a new key once and stores its hash.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// List the callers of the running proxy with usage and state.
    Callers {
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// Suspend a caller: every request gets 403 until `resume` (audited).
    Suspend {
        caller: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// Resume a suspended caller (audited).
    Resume {
        caller: String,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate a key for CALLER; prints it (only this once).
    Add {
        caller: String,
        /// Expiry, RFC 3339 (e.g. 2027-12-31T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// Keys file (default: auth.keys_file of the configuration's http listener).
        #[arg(long)]
        keys: Option<PathBuf>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// List keys (ids, callers, state; never the keys).
    List {
        #[arg(long)]
        keys: Option<PathBuf>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// Disable a key by id.
    Revoke {
        id: String,
        #[arg(long)]
        keys: Option<PathBuf>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Print what danxia has learned of an identity: `user|application|network`
    /// as alerts and audit events name it, or a user name for all of its
    /// identities.
    Show {
        identity: String,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List quarantined identities.
    List {
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// Quarantine an identity by hand (`user|application|network`).
    Add {
        identity: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// Release a quarantined identity: its statements run again.
    Release {
        identity: String,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Every live PostgreSQL/MySQL session: id, listener, user, database,
    /// client, start, statements, state.
    List {
        /// Only this listener's sessions.
        #[arg(long)]
        listener: Option<String>,
        /// Only this database user's sessions.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
    /// End a session: the client gets "terminated by administrator", a
    /// running statement is cancelled, the kill is audited.
    Kill {
        /// The session id (`danxia sessions list`, audit `session`).
        id: String,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// The last alerts raised, newest first.
    Recent {
        /// How many (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// JSON instead of one line each.
        #[arg(long)]
        json: bool,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
    },
}

// Parsed once per process: the size of the largest variant (search's
// filters) costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of an audit directory: reports the first record
    /// that was altered, removed or reordered. Exit 0 intact, 1 tampered.
    Verify {
        /// The audit directory (audit.dir in the config).
        dir: PathBuf,
    },
    /// Find records: all filters must match; results in chain order.
    /// Exit 0 with matches, 1 without, 2 on error. Examples:
    ///   danxia audit search --user alice --since 2h
    ///   danxia audit search --table public.accounts --decision deny --since 2026-11-26
    ///   danxia audit search --rule no-bulk-export --since 30d --format json | jq .statement
    #[command(verbatim_doc_comment)]
    Search {
        /// The audit directory; default: audit.dir of --config.
        dir: Option<PathBuf>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
        /// Database user (exact).
        #[arg(long)]
        user: Option<String>,
        /// Table, bare or schema-qualified, case-insensitive.
        #[arg(long)]
        table: Option<String>,
        /// From: RFC 3339, a UTC date (2026-11-26), "2026-11-26 03:00" (UTC), or ago (2h, 3d).
        #[arg(long)]
        since: Option<String>,
        /// Until (inclusive), same forms as --since.
        #[arg(long)]
        until: Option<String>,
        /// allow, deny or would_deny.
        #[arg(long)]
        decision: Option<String>,
        /// Id of the deciding rule.
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        listener: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// Record kind: statement, session_start, alert, request, audit_pruned, ...
        #[arg(long)]
        kind: Option<String>,
        /// HTTP API caller id.
        #[arg(long)]
        caller: Option<String>,
        /// HTTP route template.
        #[arg(long)]
        route: Option<String>,
        /// Substring of the statement (case-sensitive).
        #[arg(long)]
        text: Option<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// table (for a person) or json (the raw records, for jq).
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Remove (or archive, per audit.retention_action) closed files whose
    /// records are all older than audit.retention, or than --before; records
    /// an audit_pruned event so verify still proves the rest. Refuses while
    /// danxia runs on the directory (it prunes by itself, hourly).
    Prune {
        /// The audit directory; default: audit.dir of --config.
        dir: Option<PathBuf>,
        #[arg(short, long, default_value = "danxia.toml")]
        config: PathBuf,
        /// Print what would be pruned, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Prune files whose newest record is before this time (RFC 3339,
        /// date, or ago: 200d) instead of the retention.
        #[arg(long)]
        before: Option<String>,
        /// Allow --before to go below audit.retention.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Some(f) = cli.token_file {
        danxia::cli_behaviour::set_token_file(f);
    }
    match cli.command.unwrap_or(Command::Run {
        config: config::default_path(),
    }) {
        Command::Run { config } => run(config),
        Command::Init {
            dir,
            state_dir,
            postgres,
            postgres_listen,
            mysql,
            mysql_listen,
            admin_listen,
            mode,
            timezone,
            force,
        } => init(danxia::init::InitOptions {
            dir,
            state_dir,
            // Nothing named: protect the local PostgreSQL, as the shipped
            // danxia.toml does.
            postgres: match (&postgres, &mysql) {
                (None, None) => Some("127.0.0.1:5432".into()),
                _ => postgres,
            },
            postgres_listen,
            mysql,
            mysql_listen,
            admin_listen,
            mode,
            timezone,
            force,
        }),
        Command::Baseline {
            command:
                BaselineCommand::Show {
                    identity,
                    config,
                    json,
                },
        } => danxia::cli_behaviour::baseline_show(&config, &identity, json),
        Command::Quarantine { command } => {
            use danxia::cli_behaviour::{quarantine, QuarantineCmd};
            match command {
                QuarantineCommand::List { config } => quarantine(&config, QuarantineCmd::List),
                QuarantineCommand::Add {
                    identity,
                    reason,
                    config,
                } => quarantine(&config, QuarantineCmd::Add { identity, reason }),
                QuarantineCommand::Release { identity, config } => {
                    quarantine(&config, QuarantineCmd::Release { identity })
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { dir },
        } => verify(dir),
        Command::Audit {
            command:
                AuditCommand::Search {
                    dir,
                    config,
                    user,
                    table,
                    since,
                    until,
                    decision,
                    rule,
                    listener,
                    session,
                    kind,
                    caller,
                    route,
                    text,
                    limit,
                    format,
                },
        } => danxia::cli_audit::search(danxia::cli_audit::SearchArgs {
            dir,
            config_named: config != config::default_path(),
            config,
            user,
            table,
            since,
            until,
            decision,
            rule,
            listener,
            session,
            kind,
            caller,
            route,
            text,
            limit,
            json: format == "json",
        }),
        Command::Audit {
            command:
                AuditCommand::Prune {
                    dir,
                    config,
                    dry_run,
                    before,
                    force,
                },
        } => danxia::cli_audit::prune(danxia::cli_audit::PruneArgs {
            dir,
            config_named: config != config::default_path(),
            config,
            dry_run,
            before,
            force,
        }),
        Command::Sessions { command } => {
            use danxia::cli_admin::{sessions, SessionsCmd};
            match command {
                SessionsCommand::List {
                    listener,
                    user,
                    json,
                    config,
                } => sessions(
                    &config,
                    SessionsCmd::List {
                        listener,
                        user,
                        json,
                    },
                ),
                SessionsCommand::Kill { id, config } => sessions(&config, SessionsCmd::Kill { id }),
            }
        }
        Command::Alerts {
            command:
                AlertsCommand::Recent {
                    limit,
                    json,
                    config,
                },
        } => danxia::cli_admin::alerts_recent(&config, limit, json),
        Command::Api { command } => {
            use danxia::cli_api::{self, CallerCmd, KeyCmd};
            match command {
                ApiCommand::Import {
                    openapi,
                    out,
                    force,
                } => cli_api::import(&openapi, out.as_deref(), force),
                ApiCommand::Key { command } => match command {
                    KeyCommand::Add {
                        caller,
                        expires,
                        keys,
                        config,
                    } => cli_api::key(KeyCmd::Add { caller, expires }, keys, &config),
                    KeyCommand::List { keys, config } => cli_api::key(KeyCmd::List, keys, &config),
                    KeyCommand::Revoke { id, keys, config } => {
                        cli_api::key(KeyCmd::Revoke { id }, keys, &config)
                    }
                },
                ApiCommand::Callers { config } => cli_api::caller(CallerCmd::List, &config),
                ApiCommand::Explain {
                    caller,
                    method,
                    target,
                    body,
                    minute,
                    policy,
                    config,
                } => cli_api::explain(policy, &config, &caller, &method, &target, body, minute),
                ApiCommand::Suspend {
                    caller,
                    reason,
                    config,
                } => cli_api::caller(CallerCmd::Suspend { caller, reason }, &config),
                ApiCommand::Resume { caller, config } => {
                    cli_api::caller(CallerCmd::Resume { caller }, &config)
                }
            }
        }
        Command::Check { api: Some(api), .. } => danxia::cli_api::check_api(&api),
        Command::Check {
            dir,
            config,
            classification,
            allowlist,
            api: None,
        } => cli::check(dir, &config, classification, allowlist),
        Command::Explain {
            user,
            database,
            application,
            address,
            mode,
            policy,
            config,
            protocol,
            sql,
        } => cli::explain(cli::ExplainArgs {
            mysql: protocol == "mysql",
            user,
            database,
            application,
            address,
            mode,
            policy,
            config,
            sql,
        }),
        Command::Discover {
            dsn,
            sample,
            out,
            schemas,
            min_ratio,
        } => discover::run(discover::DiscoverArgs {
            dsn,
            sample,
            out,
            schemas,
            min_ratio,
        }),
    }
}

fn run(path: PathBuf) -> ExitCode {
    let mut cfg = match config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("danxia: {e}");
            return ExitCode::from(2);
        }
    };
    let base = std::env::current_dir().unwrap_or_default();
    cfg.resolve_paths(&base);
    raise_open_files_limit();
    let threads = match cfg.runtime.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().thread_name("danxia-worker").build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("danxia: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("danxia: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init(o: danxia::init::InitOptions) -> ExitCode {
    match danxia::init::init(&o) {
        Ok(w) => {
            println!(
                "wrote {} ({}, policy mode {})\n      {}/ (a copy of the default policy pack)\nstate (audit log, baselines, allowlist) goes to {}\n\nnext:\n  danxia check --config {}\n  danxia run --config {}\nthen point clients at the listener(s); see docs/operator-guide.md for the learn -> monitor -> enforce rollout.",
                w.config.display(),
                w.listeners.join(", "),
                o.mode,
                w.policy_dir.display(),
                w.state_dir.display(),
                w.config.display(),
                w.config.display(),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("danxia init: {e}");
            ExitCode::from(2)
        }
    }
}

fn verify(dir: PathBuf) -> ExitCode {
    match audit::verify_dir(&dir) {
        Ok(report) => {
            println!("{report}");
            if report.problem.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("danxia: {e}");
            ExitCode::from(2)
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as nginx, HAProxy
/// and PostgreSQL do. Every client connection costs a descriptor (a MySQL
/// or PostgreSQL session two, with its backend), and `max_connections`
/// defaults to 10,000 per listener, while the soft limit many shells and
/// service managers hand out is 1024: without this, EMFILE rather than
/// `max_connections` would be the real limit, and it would refuse clients
/// without a clear error. The hard limit is the operator's to set
/// (`LimitNOFILE=` in the systemd unit, `ulimit -Hn`).
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let old = getrlimit(Resource::Nofile);
    if old.current.is_some() && old.current != old.maximum {
        let new = Rlimit {
            current: old.maximum,
            maximum: old.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => tracing::info!(
                from = ?old.current,
                to = ?old.maximum,
                "raised the open files limit (RLIMIT_NOFILE) to the hard limit"
            ),
            Err(e) => tracing::warn!(
                soft = ?old.current,
                hard = ?old.maximum,
                error = %e,
                "cannot raise the open files limit (RLIMIT_NOFILE)"
            ),
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DANXIA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("DANXIA_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
