//! The Grafana dashboards and Prometheus rules in `dashboards/`, checked
//! with the real tools: `promtool check rules`, `promtool test rules` (the
//! alerts' unit tests), `promtool check config` on the example scrape
//! configuration; that every alert has a firing and a quiet unit test and a
//! runbook; that the dashboards' JSON is well formed; and end to end, a real
//! Prometheus (Debian's package) scraping a real danxia (PostgreSQL, MySQL
//! and HTTP listeners) under traffic answers every panel's query and every
//! recording rule with data — so that a renamed metric or label breaks the
//! build instead of a dashboard.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use danxia_e2e::*;
use serde_json::{json, Value};
use serde_yaml_ng as yaml;

/// How long the end-to-end test waits for every panel to have data.
const PANELS_WAIT: Duration = Duration::from_secs(30);
/// How long Prometheus may take to answer `/-/ready`.
const PROMETHEUS_READY: Duration = Duration::from_secs(20);
/// What Grafana's interval variables become in the queries sent to
/// Prometheus (the test's whole history fits in it).
const INTERVAL: &str = "1m";
/// The datasource every panel and target must use: the dashboards'
/// `datasource` variable (provisioned with uid `prometheus`).
const DATASOURCE_UID: &str = "${datasource}";
/// Variables Grafana defines itself.
const GRAFANA_BUILTINS: [&str; 3] = ["__rate_interval", "__interval", "__range"];

fn dashboards_dir() -> PathBuf {
    workspace_root().join("dashboards")
}

fn rules_file() -> PathBuf {
    dashboards_dir().join("prometheus/danxia.rules.yml")
}

fn readme() -> PathBuf {
    dashboards_dir().join("README.md")
}

/// `/usr/bin/<tool>` of Debian's prometheus package, or a clear failure.
fn prometheus_tool(name: &str) -> PathBuf {
    let p = PathBuf::from("/usr/bin").join(name);
    if !p.is_file() {
        panic!(
            "{} not found: run tests/install-deps.sh (Debian package `prometheus`, which brings promtool)",
            p.display()
        );
    }
    p
}

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn promtool_ok(args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(prometheus_tool("promtool"));
    cmd.args(args);
    let out = run(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {:?} failed ({}):\n{text}",
        args,
        out.status
    );
    text
}

fn read_yaml(path: &Path) -> yaml::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn yaml_str<'a>(v: &'a yaml::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

fn yaml_seq<'a>(v: &'a yaml::Value, key: &str) -> &'a [yaml::Value] {
    v.get(key)
        .and_then(|x| x.as_sequence())
        .map(|s| s.as_slice())
        .unwrap_or(&[])
}

/// Every rule of the rules file: (group, rule).
fn rules() -> Vec<yaml::Value> {
    let doc = read_yaml(&rules_file());
    yaml_seq(&doc, "groups")
        .iter()
        .flat_map(|g| yaml_seq(g, "rules").to_vec())
        .collect()
}

fn alert_names() -> Vec<String> {
    rules()
        .iter()
        .filter_map(|r| yaml_str(r, "alert").map(str::to_string))
        .collect()
}

fn recording_rule_names() -> Vec<String> {
    rules()
        .iter()
        .filter_map(|r| yaml_str(r, "record").map(str::to_string))
        .collect()
}

/// The promtool unit test files, in name order.
fn unit_test_files() -> Vec<PathBuf> {
    let dir = dashboards_dir().join("prometheus/tests");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool tests in {}", dir.display());
    files
}

#[test]
fn promtool_checks_the_rules() {
    let out = promtool_ok(&["check".as_ref(), "rules".as_ref(), rules_file().as_os_str()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let files = unit_test_files();
    let mut args: Vec<&std::ffi::OsStr> = vec!["test".as_ref(), "rules".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = promtool_ok(&args);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The example configuration, with its token file pointed at `token` and
/// the rules file next to it, as an operator would install it.
fn example_config(dir: &Path, token: &Path, adjust: impl Fn(&mut yaml::Value)) -> PathBuf {
    let mut cfg = read_yaml(&dashboards_dir().join("prometheus/prometheus.example.yml"));
    let jobs = cfg
        .get_mut("scrape_configs")
        .and_then(|s| s.as_sequence_mut())
        .expect("the example has scrape_configs");
    let job = jobs
        .iter_mut()
        .find(|j| yaml_str(j, "job_name") == Some("danxia"))
        .expect("the example has a scrape job named danxia (DanxiaDown matches on it)");
    let auth = job
        .get_mut("authorization")
        .expect("the danxia job sends the admin token (authorization)");
    assert_eq!(
        yaml_str(auth, "type"),
        Some("Bearer"),
        "authorization type: {auth:?}"
    );
    assert!(
        yaml_str(auth, "credentials_file").is_some(),
        "the token comes from a credentials_file, never inline: {auth:?}"
    );
    auth["credentials_file"] = yaml::Value::from(token.display().to_string());
    adjust(&mut cfg);
    fs::copy(rules_file(), dir.join("danxia.rules.yml")).expect("copy rules");
    let path = dir.join("prometheus.yml");
    fs::write(&path, yaml::to_string(&cfg).expect("serialize config")).expect("write config");
    path
}

#[test]
fn promtool_checks_the_example_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("admin.token");
    fs::write(&token, "example-token\n").expect("token");
    let cfg = example_config(dir.path(), &token, |_| {});
    let out = promtool_ok(&["check".as_ref(), "config".as_ref(), cfg.as_os_str()]);
    assert!(
        out.contains("is valid prometheus config file syntax"),
        "{out}"
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules().len())),
        "the example loads the rules file: {out}"
    );
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to `-`,
/// punctuation other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_has_unit_tests_and_a_runbook() {
    let alerts = alert_names();
    assert!(alerts.len() >= 10, "alerts: {alerts:?}");
    // alert → (firing cases, quiet cases) over all unit test files.
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in unit_test_files() {
        let doc = read_yaml(&f);
        for t in yaml_seq(&doc, "tests") {
            for a in yaml_seq(t, "alert_rule_test") {
                let name = yaml_str(a, "alertname").unwrap_or_else(|| {
                    panic!("{}: alert_rule_test without alertname", f.display())
                });
                let firing = !yaml_seq(a, "exp_alerts").is_empty();
                let e = cases.entry(name.to_string()).or_default();
                if firing {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
    }
    let text = fs::read_to_string(readme()).expect("dashboards/README.md");
    let anchors: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let mut problems = Vec::new();
    for name in &alerts {
        match cases.get(name) {
            None => problems.push(format!("{name}: no promtool test case")),
            Some((0, _)) => problems.push(format!("{name}: no test case where it fires")),
            Some((_, 0)) => problems.push(format!("{name}: no test case where it must not fire")),
            Some(_) => {}
        }
    }
    for name in cases.keys() {
        if !alerts.contains(name) {
            problems.push(format!(
                "tests name {name}, which is not an alert of the rules file"
            ));
        }
    }
    for r in rules() {
        let Some(name) = yaml_str(&r, "alert") else {
            continue;
        };
        let labels = r.get("labels");
        let severity = labels.and_then(|l| yaml_str(l, "severity"));
        if !matches!(severity, Some("critical" | "warning")) {
            problems.push(format!(
                "{name}: severity label is {severity:?}, not critical or warning"
            ));
        }
        let ann = r.get("annotations");
        for key in ["summary", "description"] {
            if ann.and_then(|a| yaml_str(a, key)).is_none_or(str::is_empty) {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        match ann.and_then(|a| yaml_str(a, "runbook_url")) {
            Some(url) => {
                let want = format!("dashboards/README.md#{}", name.to_lowercase());
                if !url.ends_with(&want) {
                    problems.push(format!(
                        "{name}: runbook_url {url} does not end with {want}"
                    ));
                } else if !anchors.contains(&name.to_lowercase()) {
                    problems.push(format!(
                        "{name}: dashboards/README.md has no heading `{name}` (the runbook)"
                    ));
                }
            }
            None => problems.push(format!("{name}: no runbook_url annotation")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One query of one dashboard panel.
struct PanelQuery {
    dashboard: String,
    panel: String,
    ref_id: String,
    expr: String,
}

fn dashboard_files() -> Vec<PathBuf> {
    let dir = dashboards_dir().join("grafana");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn load_dashboard(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every `$name` / `${name}` / `[[name]]` variable reference in `s`.
fn variable_refs(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (start, braced) = if b.get(i + 1) == Some(&b'{') {
                (i + 2, true)
            } else {
                (i + 1, false)
            };
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                out.push(s[start..j].to_string());
            }
            i = if braced { j + 1 } else { j.max(i + 1) };
        } else {
            i += 1;
        }
    }
    out
}

/// The panels' queries of every dashboard, after checking its structure;
/// panics listing every structural problem.
fn panel_queries() -> Vec<PanelQuery> {
    let files = dashboard_files();
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "danxia-overview.json",
        "danxia-security.json",
        "danxia-listener.json",
    ] {
        assert!(
            names.contains(want),
            "dashboards/grafana/{want} is missing: {names:?}"
        );
    }
    let ds_default = {
        let p = read_yaml(&dashboards_dir().join("grafana/provisioning/datasources.yaml"));
        let uids: Vec<String> = yaml_seq(&p, "datasources")
            .iter()
            .filter(|d| yaml_str(d, "type") == Some("prometheus"))
            .filter_map(|d| yaml_str(d, "uid").map(str::to_string))
            .collect();
        assert_eq!(
            uids,
            ["prometheus"],
            "provisioned Prometheus datasource uids"
        );
        uids[0].clone()
    };
    let prov = read_yaml(&dashboards_dir().join("grafana/provisioning/dashboards.yaml"));
    assert!(
        yaml_seq(&prov, "providers")
            .iter()
            .any(|p| yaml_str(p, "type") == Some("file")),
        "dashboards.yaml provisions from files: {prov:?}"
    );
    let expected_ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut queries = Vec::new();
    for f in &files {
        let d = load_dashboard(f);
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut problem = |s: String| problems.push(format!("{name}: {s}"));
        match d["uid"].as_str() {
            Some(u) if !u.is_empty() => {
                if !uids.insert(u.to_string()) {
                    problem(format!("uid {u} used twice"));
                }
            }
            _ => problem("no uid".into()),
        }
        if d["title"].as_str().is_none_or(str::is_empty) {
            problem("no title".into());
        }
        let vars: Vec<&Value> = d["templating"]["list"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let var_names: BTreeSet<String> = vars
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        match vars.iter().find(|v| v["name"] == "datasource") {
            Some(v) => {
                if v["type"] != "datasource" || v["query"] != "prometheus" {
                    problem(format!(
                        "the datasource variable is not a Prometheus datasource picker: {v}"
                    ));
                }
                if v["current"]["value"] != ds_default.as_str() {
                    problem(format!(
                        "the datasource variable defaults to {} instead of the provisioned uid {ds_default}",
                        v["current"]["value"]
                    ));
                }
            }
            None => problem("no `datasource` variable".into()),
        }
        for v in &vars {
            if v["type"] == "query" {
                if v["datasource"] != expected_ds {
                    problem(format!(
                        "variable {} queries {} instead of {expected_ds}",
                        v["name"], v["datasource"]
                    ));
                }
                let q = v["query"]["query"]
                    .as_str()
                    .or(v["query"].as_str())
                    .unwrap_or("");
                if !q.starts_with("label_values(") {
                    problem(format!(
                        "variable {} is not a label_values() query: {q:?}",
                        v["name"]
                    ));
                }
                for r in variable_refs(q) {
                    if !var_names.contains(&r) {
                        problem(format!("variable {} uses undefined ${r}", v["name"]));
                    }
                }
            }
        }
        if name == "danxia-listener.json" && !var_names.contains("listener") {
            problem("no `listener` variable".into());
        }
        let panels = d["panels"].as_array().cloned().unwrap_or_default();
        if panels.is_empty() {
            problem("no panels".into());
        }
        let mut ids = BTreeSet::new();
        for p in &panels {
            let title = p["title"].as_str().unwrap_or("").to_string();
            if title.is_empty() {
                problem(format!("panel {} has no title", p["id"]));
            }
            match p["id"].as_u64() {
                Some(id) => {
                    if !ids.insert(id) {
                        problem(format!("panel id {id} used twice ({title})"));
                    }
                }
                None => problem(format!("panel {title:?} has no numeric id")),
            }
            if p["gridPos"]["w"].as_u64().is_none() || p["gridPos"]["h"].as_u64().is_none() {
                problem(format!("panel {title:?} has no gridPos"));
            }
            if p["datasource"] != expected_ds {
                problem(format!(
                    "panel {title:?} uses datasource {} instead of {expected_ds}",
                    p["datasource"]
                ));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problem(format!("panel {title:?} has no targets"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                let ref_id = t["refId"].as_str().unwrap_or("").to_string();
                if ref_id.is_empty() || !refs.insert(ref_id.clone()) {
                    problem(format!(
                        "panel {title:?}: missing or repeated refId {ref_id:?}"
                    ));
                }
                if t["datasource"] != expected_ds {
                    problem(format!(
                        "panel {title:?} target {ref_id} uses datasource {}",
                        t["datasource"]
                    ));
                }
                let expr = t["expr"].as_str().unwrap_or("").trim().to_string();
                if expr.is_empty() {
                    problem(format!("panel {title:?} target {ref_id} has no expr"));
                    continue;
                }
                for r in variable_refs(&expr) {
                    if !var_names.contains(&r) && !GRAFANA_BUILTINS.contains(&r.as_str()) {
                        problem(format!(
                            "panel {title:?} target {ref_id} uses undefined ${r}"
                        ));
                    }
                }
                queries.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: title.clone(),
                    ref_id,
                    expr,
                });
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    queries
}

#[test]
fn dashboards_are_well_formed() {
    let q = panel_queries();
    assert!(q.len() >= 40, "only {} panel queries", q.len());
    // Every dashboard filters on the instance variable, and the listener
    // dashboard on the listener, in every query.
    let mut problems = Vec::new();
    for p in &q {
        if !p.expr.contains("$instance") {
            problems.push(format!(
                "{} / {} {}: no $instance filter: {}",
                p.dashboard, p.panel, p.ref_id, p.expr
            ));
        }
        if p.dashboard == "danxia-listener.json" && !p.expr.contains("$listener") {
            problems.push(format!(
                "{} / {} {}: no $listener filter: {}",
                p.dashboard, p.panel, p.ref_id, p.expr
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn variable_refs_are_found() {
    assert_eq!(
        variable_refs(r#"rate(x{a=~"$instance", b=~"${listener}"}[$__rate_interval]) $"#),
        ["instance", "listener", "__rate_interval"]
    );
}

/// A Grafana expression as Prometheus gets it: every instance and listener,
/// interval variables as [`INTERVAL`].
fn substitute(expr: &str) -> String {
    let mut s = expr.to_string();
    for v in ["instance", "listener"] {
        s = s
            .replace(&format!("${{{v}}}"), ".+")
            .replace(&format!("${v}"), ".+");
    }
    for v in GRAFANA_BUILTINS {
        s = s
            .replace(&format!("${{{v}}}"), INTERVAL)
            .replace(&format!("${v}"), INTERVAL);
    }
    s
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Prometheus server on a free loopback port with its own storage;
/// killed on drop.
struct Prometheus {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Prometheus {
    fn start(config: &Path, dir: &Path) -> Prometheus {
        let bin = prometheus_tool("prometheus");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = dir.join(format!("prometheus-{port}.log"));
            let logf = fs::File::create(&log).expect("prometheus log");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("clone log"))
                .stderr(logf)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut p = Prometheus {
                port,
                child: Some(child),
                log,
            };
            let deadline = Instant::now() + PROMETHEUS_READY;
            loop {
                if let Some(c) = p.child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        last = format!("prometheus exited with {status}:\n{}", p.log_text());
                        p.child = None;
                        break;
                    }
                }
                if matches!(try_http_get(port, "/-/ready"), Ok((200, _))) {
                    return p;
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus did not become ready within {PROMETHEUS_READY:?}:\n{}",
                    p.log_text()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            // Exited early (most likely the port was taken): retry.
        }
        panic!("prometheus failed to start three times; last:\n{last}");
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/api/v1/query` of `expr`: the result vector, or why there is none.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let (code, body) =
            try_http_get(self.port, &path).map_err(|e| format!("GET {path}: {e}"))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{code} {body} ({e})"))?;
        if v["status"] != "success" {
            return Err(format!("{code}: {}: {}", v["errorType"], v["error"]));
        }
        match &v["data"]["result"] {
            Value::Array(a) => Ok(a.clone()),
            // A scalar (e.g. vector(0) folded) is data too.
            other if !other.is_null() => Ok(vec![other.clone()]),
            _ => Err(format!("no result: {body}")),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A random token (the admin token file, when the harness wrote none).
fn random_token() -> String {
    let mut buf = [0u8; 24];
    let mut f = fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The test's PostgreSQL schema, dropped at the end.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = run(psql_direct("postgres", "test")
            .arg("-q")
            .arg("-c")
            .arg(format!("drop schema if exists {} cascade", self.0)));
    }
}

/// Rules added to a copy of the default pack: a mask for one application,
/// a honeypot table that quarantines whoever reads it.
fn extra_rules(schema: &str) -> String {
    format!(
        r#"
[[rule]]
id = "dash-mask-phones"
description = "The dashboards test's masked application sees phone numbers masked"
action = "mask"
applications = ["dash-masked"]
[rule.mask.tags]
"pii.phone" = "keep(3,4)"

[[rule]]
id = "dash-honeypot"
description = "Whoever reads the honeypot table is quarantined"
action = "quarantine"
tables = ["{schema}.honey"]
"#
    )
}

/// psql through danxia as postgres with application `app`; the output
/// (errors expected for denied statements).
fn pg(d: &Danxia, app: &str, sql: &str) -> std::process::Output {
    run(d
        .psql("postgres", "test")
        .env("PGAPPNAME", app)
        .args(["-X", "-q", "-A", "-t", "-c", sql]))
}

#[test]
fn every_panel_and_recording_rule_has_data_from_a_real_prometheus() {
    let started = Instant::now();
    require_postgres();
    require_mariadb();
    let queries = panel_queries();
    let tmp = tempfile::Builder::new()
        .prefix("danxia-dash-")
        .tempdir()
        .expect("tempdir");

    // PostgreSQL: citizens with valid personal data, a plain table, a honeypot.
    let schema = Schema(format!("dxdash_{}", std::process::id()));
    let fixture = workspace_root().join("tests/fixtures/citizens.sql");
    run_ok_stdin(
        psql_direct("postgres", "test").arg("-q"),
        &format!(
            "drop schema if exists {s} cascade; create schema {s}; set search_path = {s};\n\
             \\i {}\n\
             create table citizens as select * from danxia_citizens(300, 11);\n\
             create table big as select g as id, md5(g::text) as v from generate_series(1, 2000) g;\n\
             create table honey (id int); insert into honey values (1);\n",
            fixture.display(),
            s = schema.0
        ),
    );

    // The default pack plus the test's rules.
    let policy = tmp.path().join("policy");
    fs::create_dir(&policy).expect("policy dir");
    let pack = workspace_root().join("policies/packs/default");
    for e in fs::read_dir(&pack).expect("default pack") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "toml") {
            fs::copy(&p, policy.join(p.file_name().expect("name"))).expect("copy pack");
        }
    }
    fs::write(
        policy.join("70-dashboards-test.toml"),
        extra_rules(&schema.0),
    )
    .expect("rules");

    // The HTTP listener in front of the synthetic citizens API.
    let up = Upstream::start(7);
    let keys_file = tmp.path().join("keys.toml");
    let keys: BTreeMap<&str, String> = ["dept-health", "dept-stats", "dept-audit"]
        .into_iter()
        .map(|c| (c, api_key_add(&keys_file, c).0))
        .collect();
    let api_port = free_port();
    // A syslog sink nobody reads: its delivery counters and queue exist.
    let syslog = UdpSocket::bind("127.0.0.1:0").expect("bind syslog socket");
    let s = |p: &Path| toml_str(&p.display().to_string());
    let extra_toml = format!(
        "[policy]\ndir = {policy}\nmode = \"enforce\"\nallowlist = \"allowlist.toml\"\n\n\
         [behaviour]\nenabled = true\nstore = \"memory\"\n\
         window = \"1s\"\nlearning = \"1s\"\nmin_active_windows = 1\nnew_application_score = 9.0\n\n\
         [alerts.syslog]\naddress = \"{syslog}\"\ntransport = \"udp\"\n\n\
         [[listener]]\nname = \"api\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:{api_port}\"\n\
         api_policy = {api_policy}\n\
         [[listener.upstream]]\nprefix = \"/api/\"\nurl = \"{upstream}\"\n\
         [listener.auth]\napi_key_header = \"x-api-key\"\nkeys_file = {keys}\n\n\
         [api]\nstore = \"disk\"\ndir = {api_dir}\ntimezone = \"{tz}\"\n",
        policy = s(&policy),
        syslog = syslog.local_addr().expect("syslog addr"),
        api_policy = s(&workspace_root().join("policies/packs/api-example")),
        upstream = up.url(),
        keys = s(&keys_file),
        api_dir = s(&tmp.path().join("api")),
        tz = daytime_zone(),
    );
    let d = Danxia::start_with(Options {
        mysql: true,
        extra_toml,
        ..Options::default()
    });

    // Prometheus, configured from the shipped example: this danxia as the
    // target, its admin token, the rules, 1 s scrapes and evaluations.
    let token = d.dir().join("admin.token");
    if !token.exists() {
        let mut f = fs::File::create(&token).expect("admin.token");
        writeln!(f, "{}", random_token()).expect("write admin.token");
    }
    let prom_dir = tmp.path().join("prometheus");
    fs::create_dir(&prom_dir).expect("prometheus dir");
    let admin = format!("127.0.0.1:{}", d.admin_port);
    let cfg = example_config(&prom_dir, &token, |cfg| {
        cfg["global"]["scrape_interval"] = "1s".into();
        cfg["global"]["evaluation_interval"] = "1s".into();
        let jobs = cfg["scrape_configs"]
            .as_sequence_mut()
            .expect("scrape_configs");
        for j in jobs.iter_mut() {
            if yaml_str(j, "job_name") == Some("danxia") {
                j["static_configs"] =
                    yaml::from_str(&format!("[{{targets: ['{admin}']}}]")).expect("static_configs");
            }
        }
    });
    let prom = Prometheus::start(&cfg, &prom_dir);

    // Traffic, twice, so that every series has samples before and after
    // an increment.
    let api_get = |caller: Option<&str>, path: &str| -> u16 {
        let url = format!("http://127.0.0.1:{api_port}{path}");
        let header = caller.map(|c| format!("x-api-key: {}", keys[c]));
        let mut args: Vec<&str> = Vec::new();
        if let Some(h) = &header {
            args.extend(["-H", h.as_str()]);
        }
        args.extend(["-o", "/dev/null", url.as_str()]);
        curl(&args).status
    };
    for round in 0..2 {
        let sel = format!("select count(*) from {}.citizens", schema.0);
        let out = pg(&d, "dash", &sel);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Denied by the default pack (administrators included).
        let out = pg(&d, "dash", "select * from pg_shadow");
        assert!(!out.status.success(), "pg_shadow must be denied");
        // 300 citizens in the clear: sensitive values, a returned-limit alert.
        let out = pg(&d, "dash", &format!("select * from {}.citizens", schema.0));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Masked phones.
        let out = pg(
            &d,
            "dash-masked",
            &format!("select phone from {}.citizens limit 20", schema.0),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // An administrator's tautology runs, with an alert.
        let out = pg(
            &d,
            "dash",
            &format!(
                "select id from {}.citizens where id = 1 or 1=1 limit 1",
                schema.0
            ),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // In round 1, postgres has a baseline (1 s learning, 1 s windows):
        // a new application scores new_application_score = 9, above the
        // default pack's alert-behaviour-anomaly (8).
        let out = pg(
            &d,
            &format!("dash-new-{round}"),
            &format!("select count(*) from {}.big", schema.0),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The honeypot quarantines its reader's identity.
        let _ = pg(
            &d,
            &format!("dash-honey-{round}"),
            &format!("select * from {}.honey", schema.0),
        );
        // MySQL: allowed and denied.
        let out = run(d.mariadb("root", None, "test").args(["-e", "select 1"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(d
            .mariadb("root", None, "test")
            .args(["-e", "select user, host from mysql.user"]));
        assert!(!out.status.success(), "mysql.user must be denied");
        // A session ended by a protocol error (not a PostgreSQL startup).
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", d.pg_port)) {
            let _ = s.write_all(&[0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut sink);
        }
        // HTTP: masked, in the clear, not granted, not authenticated.
        assert_eq!(
            api_get(Some("dept-health"), "/api/v1/persons?page=1&size=5"),
            200
        );
        assert_eq!(
            api_get(Some("dept-audit"), "/api/v1/persons?page=2&size=5"),
            200
        );
        assert_eq!(api_get(Some("dept-stats"), "/api/v1/persons/1"), 403);
        assert_eq!(api_get(None, "/api/v1/persons/1"), 401);
        // Reloads and a person's suspension of an API caller.
        assert_eq!(d.http_post("/policy/reload").0, 200);
        assert_eq!(d.http_post("/api/reload").0, 200);
        assert_eq!(
            d.http_post("/api/suspend?caller=dept-stats&reason=test").0,
            200
        );
        assert_eq!(d.http_post("/api/resume?caller=dept-stats").0, 200);
        if round == 0 {
            std::thread::sleep(Duration::from_millis(2500));
        }
    }

    // Every panel query and recording rule answers with data.
    let mut checks: Vec<(String, String)> = queries
        .iter()
        .map(|q| {
            (
                format!("{} / {} ({})", q.dashboard, q.panel, q.ref_id),
                substitute(&q.expr),
            )
        })
        .collect();
    for r in recording_rule_names() {
        checks.push((format!("recording rule {r}"), r.clone()));
    }
    let deadline = Instant::now() + PANELS_WAIT;
    let failures = loop {
        let up = prom.query(r#"up{job="danxia"} == 1"#);
        let mut failures: Vec<String> = Vec::new();
        if !matches!(&up, Ok(v) if !v.is_empty()) {
            failures.push(format!("the danxia target is not up: {up:?}"));
        }
        for (what, expr) in &checks {
            match prom.query(expr) {
                Ok(v) if !v.is_empty() => {}
                Ok(_) => failures.push(format!("{what}: no data\n    {expr}")),
                Err(e) => failures.push(format!("{what}: {e}\n    {expr}")),
            }
        }
        if failures.is_empty() || Instant::now() > deadline {
            break failures;
        }
        std::thread::sleep(Duration::from_millis(1000));
    };
    assert!(
        failures.is_empty(),
        "{} of {} queries have no data after {:?}:\n{}\n\ndanxia /metrics:\n{}\nprometheus log:\n{}",
        failures.len(),
        checks.len(),
        started.elapsed(),
        failures.join("\n"),
        d.metrics(),
        prom.log_text()
    );
    eprintln!(
        "{} panel queries and {} recording rules answered with data after {:?}",
        queries.len(),
        checks.len() - queries.len(),
        started.elapsed()
    );
}
