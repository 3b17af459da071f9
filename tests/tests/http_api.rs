//! The HTTP API listener end to end: the real danxia binary in front of the
//! synthetic citizen-records API (`tests/upstream/citizens_api.py`), with
//! the shipped API policy `policies/packs/api-example` (callers
//! `dept-health`, `dept-stats`, `dept-audit`) or a per-test copy of it,
//! API keys made with the real CLI (`danxia api key add`), HS256 JWTs
//! signed here, and real clients: curl (HTTP/1.1, gzip, HTTP/2 prior
//! knowledge) and Python `requests` (`tests/clients/api_requests.py`).
//!
//! Each test starts its own upstream and danxia (ports and directories of
//! its own), so the tests run in parallel. What is checked is what a caller
//! and an auditor see from outside: status codes, RFC 9457 problem
//! documents, response bodies against the upstream's direct answer, the
//! audit events (`kind = "request"` / `"admin"` / `"alert"`), `/metrics`,
//! the upstream's request log (`GET /__requests`) and danxia's memory.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use danxia_e2e::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Upper bound of every wait for an audit event, a metric or a reload.
const WAIT: Duration = Duration::from_secs(15);
/// The upstream's record generator seed (records are a function of it).
const SEED: u64 = 7;
/// The JWT audience danxia is configured to accept.
const AUDIENCE: &str = "danxia-test";
/// The HS256 secret of the JWKS key `t1`.
const JWT_SECRET: &[u8] = b"danxia-e2e: hs256 secret, 32+ bytes long";
/// Fields the shipped pack grants dept-health in a person record.
const HEALTH_FIELDS: [&str; 6] = ["name", "gender", "birth", "district", "id_number", "phone"];
/// Largest resident set danxia may reach while streaming 200 MB.
const MAX_RSS_KIB: u64 = 150 * 1024;

/// Extra routes (for the upstream's misbehaving endpoints) in per-test
/// copies of the pack; `dept-audit` (routes = ["*"]) may call them.
const TEST_ROUTES: &str = r#"
[[route]]
id = "test.broken"
method = "GET"
path = "/api/v1/broken"
query = ["mode"]
records = "$.items[*]"

[[route]]
id = "test.huge"
method = "GET"
path = "/api/v1/huge"
query = ["mb"]
records = "$[*]"
"#;

fn shipped_pack() -> PathBuf {
    workspace_root().join("policies/packs/api-example")
}

/// What differs between the tests' danxia set-ups.
struct Setup {
    /// The API policy directory; `None`: the shipped pack.
    policy: Option<PathBuf>,
    /// `[listener.http] buffer_bytes`.
    buffer_bytes: u64,
    /// Extra keys of `[behaviour]` (after `enabled` and `store`).
    behaviour: String,
    /// Extra keys of `[listener.http]` (after `buffer_bytes`).
    http: String,
    /// `[api]` store lines; empty: a disk store in the test's directory.
    api_store: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            policy: None,
            buffer_bytes: 65536,
            behaviour: String::new(),
            http: String::new(),
            api_store: String::new(),
        }
    }
}

fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 JWT (`kid` t1) with `claims`.
fn jwt(claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "t1"});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET).expect("any key length");
    mac.update(signing_input.as_bytes());
    let sig = b64url(&mac.finalize().into_bytes());
    // The signature is what makes the token a credential; the claims
    // (caller, expiry) may be audited.
    danxia_e2e::artifacts::register_secret(&sig);
    format!("{signing_input}.{sig}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `value` keeps its first `first` and last `last` characters of
/// `original` and stars the rest (`keep(first,last)`).
fn assert_kept(value: &str, original: &str, first: usize, last: usize, what: &str) {
    let v: Vec<char> = value.chars().collect();
    let o: Vec<char> = original.chars().collect();
    assert_ne!(value, original, "{what} is not masked");
    assert_eq!(
        v.len(),
        o.len(),
        "{what}: keep() keeps the length: {value} vs {original}"
    );
    assert_eq!(
        &v[..first],
        &o[..first],
        "{what}: first {first} kept: {value}"
    );
    assert_eq!(
        &v[v.len() - last..],
        &o[o.len() - last..],
        "{what}: last {last} kept: {value}"
    );
    assert!(
        v[first..v.len() - last].iter().all(|c| *c == '*'),
        "{what}: the middle is starred: {value}"
    );
}

/// A copy of the shipped pack in `dir`, with `edit` applied to every
/// `[[caller]]` table (by id) and `extra` files added.
fn pack_copy(dir: &Path, edit: impl Fn(&str, &mut toml::Table), extra: &[(&str, &str)]) -> PathBuf {
    let out = dir.join("api-policy");
    std::fs::create_dir_all(&out).expect("policy dir");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(shipped_pack())
        .unwrap_or_else(|e| panic!("{}: {e}", shipped_pack().display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    assert!(
        !entries.is_empty(),
        "{} has no *.toml",
        shipped_pack().display()
    );
    for p in entries {
        let text = std::fs::read_to_string(&p).expect("read pack file");
        let mut doc: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let text = match doc.get_mut("caller").and_then(|c| c.as_array_mut()) {
            Some(callers) => {
                for c in callers.iter_mut() {
                    if let Some(t) = c.as_table_mut() {
                        let id = t
                            .get("id")
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string();
                        edit(&id, t);
                    }
                }
                toml::to_string(&doc).expect("serialise policy file")
            }
            None => text,
        };
        std::fs::write(out.join(p.file_name().expect("file name")), text).expect("write copy");
    }
    for (name, text) in extra {
        std::fs::write(out.join(name), text).expect("write extra policy file");
    }
    out
}

/// A copy of the shipped pack in `dir` where dept-health has
/// `quota.<key> = value`.
fn health_quota_policy(dir: &Path, key: &str, value: i64) -> PathBuf {
    pack_copy(
        dir,
        |id, t| {
            if id == "dept-health" {
                set_quota(t, key, value);
            }
        },
        &[],
    )
}

/// Waits for the next minute when fewer than `margin` seconds are left in
/// this one: per-minute counters are fixed windows, and a test must not
/// straddle their end.
fn stay_within_one_minute(margin: u64) {
    let second = unix_now() % 60;
    if second >= 60 - margin {
        std::thread::sleep(Duration::from_secs(61 - second));
    }
}

/// Sets `caller.quota.<key> = value`.
fn set_quota(t: &mut toml::Table, key: &str, value: i64) {
    let q = t
        .entry("quota")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    q.as_table_mut()
        .expect("quota is a table")
        .insert(key.into(), toml::Value::Integer(value));
}

/// One test's world: the upstream, danxia with an `http` listener named
/// `api` in front of it, API keys for the three callers.
struct Api {
    d: Danxia,
    up: Upstream,
    port: u16,
    /// caller → (key, key id).
    keys: HashMap<String, (String, String)>,
    keys_file: PathBuf,
    /// Kept last: keys, JWKS, policy copies and the `[api]` state live here.
    tmp: tempfile::TempDir,
}

impl Api {
    fn start(setup: Setup) -> Api {
        let tmp = tempfile::Builder::new()
            .prefix("danxia-http-")
            .tempdir()
            .expect("tempdir");
        let up = Upstream::start(SEED);
        let keys_file = tmp.path().join("keys.toml");
        let mut keys = HashMap::new();
        for caller in ["dept-health", "dept-stats", "dept-audit"] {
            keys.insert(caller.to_string(), api_key_add(&keys_file, caller));
        }
        let jwks = tmp.path().join("jwks.json");
        std::fs::write(
            &jwks,
            json!({"keys": [{"kty": "oct", "kid": "t1", "alg": "HS256", "k": b64url(JWT_SECRET)}]})
                .to_string(),
        )
        .expect("write jwks");
        let policy = setup.policy.clone().unwrap_or_else(shipped_pack);
        let port = free_port();
        let s = |p: &Path| toml_str(&p.display().to_string());
        let extra_toml = format!(
            "[[listener]]\nname = \"api\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:{port}\"\n\
             api_policy = {policy}\n\
             [[listener.upstream]]\nprefix = \"/api/\"\nurl = \"{upstream}\"\n\
             [listener.auth]\napi_key_header = \"x-api-key\"\napi_key_query = \"api_key\"\n\
             keys_file = {keys}\njwks_file = {jwks}\njwt_audience = \"{AUDIENCE}\"\n\
             [listener.http]\nbuffer_bytes = {buffer}\n{http}\n\n\
             [api]\n{store}\ntimezone = \"{tz}\"\n\n\
             [behaviour]\nenabled = true\nstore = \"memory\"\n{behaviour}\n",
            policy = s(&policy),
            upstream = up.url(),
            keys = s(&keys_file),
            jwks = s(&jwks),
            buffer = setup.buffer_bytes,
            store = if setup.api_store.is_empty() {
                format!("store = \"disk\"\ndir = {}", s(&tmp.path().join("api")))
            } else {
                setup.api_store.clone()
            },
            tz = daytime_zone(),
            behaviour = setup.behaviour,
            http = setup.http,
        );
        let d = Danxia::start_with(Options {
            extra_toml,
            ..Options::default()
        });
        let api = Api {
            d,
            up,
            port,
            keys,
            keys_file,
            tmp,
        };
        // /readyz said the listeners are bound; make sure of ours.
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the api listener on {port} never accepted; danxia log:\n{}",
                api.d.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        api
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn key(&self, caller: &str) -> &str {
        &self.keys[caller].0
    }

    /// curl GET `path` as `caller` (API key header) with `extra` arguments.
    fn get(&self, caller: &str, path: &str, extra: &[&str]) -> CurlOut {
        let header = format!("x-api-key: {}", self.key(caller));
        let url = self.url(path);
        let mut args: Vec<&str> = vec!["-H", &header];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    /// The last `kind = "request"` event matching `pred`, waiting for it.
    fn request_event(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let evs = self
            .d
            .wait_audit(WAIT, |e| e["kind"] == "request" && pred(e));
        evs.into_iter()
            .filter(|e| e["kind"] == "request" && pred(e))
            .last()
            .expect("wait_audit returned a match")
    }

    /// The request event of `caller` whose audited target is `statement`.
    fn event_for(&self, caller: &str, statement: &str) -> Value {
        self.request_event(|e| e["caller"] == caller && e["statement"] == statement)
    }

    /// `danxia ARGS -c <config>` in danxia's directory.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        run(Command::new(bin_path())
            .args(args)
            .arg("-c")
            .arg(&self.d.config_path)
            .current_dir(self.d.dir()))
    }
}

/// Asserts an RFC 9457 problem answer with `status` and `rule`; returns
/// the document.
fn assert_problem(out: &CurlOut, status: u16, rule: &str) -> Value {
    assert_eq!(
        out.status,
        status,
        "expected {status} {rule}, got {}: {}",
        out.status,
        out.text()
    );
    assert_eq!(
        out.header("content-type"),
        Some("application/problem+json"),
        "{:?}",
        out.headers
    );
    let p = out.json();
    assert_eq!(p["rule"], rule, "{p}");
    assert_eq!(p["type"], format!("urn:danxia:rule:{rule}"), "{p}");
    assert_eq!(p["status"], status, "{p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    p
}

/// Asserts the audited refusal of the request `statement` by `rule`.
fn assert_refused_event(ev: &Value, status: u16, rule: &str) {
    assert_eq!(ev["outcome"], "refused", "{ev}");
    assert_eq!(ev["rule"], rule, "{ev}");
    assert_eq!(ev["status"], status, "{ev}");
    assert_eq!(ev["verdict"], "denied", "{ev}");
}

// ------------------------------------------------------------------ tests

#[test]
fn scope_masking_and_counting() {
    let mut api = Api::start(Setup::default());
    let path = "/api/v1/persons?page=1&size=5";
    let out = api.get("dept-health", path, &[]);
    assert_eq!(out.status, 200, "{}", out.text());
    assert_eq!(out.exit, 0, "{}", out.stderr);
    let got = out.json();
    let (code, direct) = api.up.get(path);
    assert_eq!(code, 200, "{direct}");
    let direct: Value = serde_json::from_str(&direct).expect("upstream JSON");

    let items = got["items"]
        .as_array()
        .expect("items kept (ancestor of granted fields)");
    let want = direct["items"].as_array().expect("upstream items");
    assert_eq!(items.len(), 5, "{got}");
    assert_eq!(
        (&got["total"], &got["page"], &got["size"]),
        (&direct["total"], &direct["page"], &direct["size"])
    );
    let granted: BTreeSet<&str> = HEALTH_FIELDS.into_iter().collect();
    for (g, w) in items.iter().zip(want) {
        let keys: BTreeSet<&str> = g
            .as_object()
            .expect("record")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, granted, "only the granted fields: {g}");
        for f in ["name", "gender", "birth", "district"] {
            assert_eq!(g[f], w[f], "{f} in the clear: {g} vs {w}");
        }
        let id = w["id_number"].as_str().expect("upstream id_number");
        assert_kept(
            g["id_number"].as_str().expect("id_number"),
            id,
            6,
            4,
            "id_number",
        );
        let phone = w["phone"].as_str().expect("upstream phone");
        assert_kept(g["phone"].as_str().expect("phone"), phone, 3, 4, "phone");
    }

    let ev = api.event_for("dept-health", path);
    assert_eq!(ev["listener"], "api", "{ev}");
    assert_eq!(ev["protocol"], "http", "{ev}");
    assert_eq!(ev["protocol_flow"], "http/1.1", "{ev}");
    assert_eq!(ev["operation"], "GET", "{ev}");
    assert_eq!(ev["route"], "/api/v1/persons", "{ev}");
    assert_eq!(ev["route_id"], "persons.list", "{ev}");
    assert_eq!(ev["status"], 200, "{ev}");
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert_eq!(ev["records"], 5, "{ev}");
    assert_eq!(ev["rows"], 5, "{ev}");
    assert_eq!(ev["application"], "api_key", "{ev}");
    assert_eq!(
        ev["credential"],
        format!("api_key:{}", api.keys["dept-health"].1),
        "{ev}"
    );
    assert_eq!(ev["upstream"], api.up.url(), "{ev}");
    assert!(
        ev["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("dept-health")),
        "the deciding grant: {ev}"
    );
    let masked: Vec<&str> = ev["masked_fields"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Paths are listed as templates (array indices as `[*]`), once each.
    assert_eq!(masked, ["$.items[*].id_number", "$.items[*].phone"], "{ev}");
    assert_eq!(ev["masked"], 10, "5 identity numbers and 5 phones: {ev}");
    let removed: Vec<&str> = ev["removed_fields"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(removed, ["$.items[*].id", "$.items[*].address"], "{ev}");
    assert_eq!(ev["removed"], 10, "{ev}");
    assert!(
        !ev.to_string()
            .contains(want[0]["id_number"].as_str().unwrap_or("-")),
        "no raw identity number in the audit: {ev}"
    );

    let st = api.d.shutdown();
    assert!(st.success(), "danxia exit {st}");
    let v = api.d.audit_verify();
    assert!(
        v.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // Last, so that a failure here does not hide the checks above.
    assert_eq!(ev["verdict"], "allowed", "{ev}");
    // `sensitive` counts what left in the clear (as for SQL results): the
    // identity numbers and phones were all masked.
    assert!(
        ev["sensitive"].get("pii.id_number").is_none()
            && ev["sensitive"].get("pii.phone").is_none(),
        "masked values are not personal data in the clear: {ev}"
    );
}

#[test]
fn route_and_query_scope() {
    let api = Api::start(Setup::default());
    // dept-stats may list persons (districts only) but not get one.
    let out = api.get("dept-stats", "/api/v1/persons/1", &[]);
    let p = assert_problem(&out, 403, "api.route-not-granted");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("dept-stats"),
        "{p}"
    );
    let ev = api.event_for("dept-stats", "/api/v1/persons/1");
    assert_refused_event(&ev, 403, "api.route-not-granted");
    assert_eq!(ev["route"], "/api/v1/persons/{id}", "{ev}");

    // …and what it may list is the district alone.
    let out = api.get("dept-stats", "/api/v1/persons?page=2&size=3", &[]);
    assert_eq!(out.status, 200, "{}", out.text());
    for item in out.json()["items"].as_array().expect("items") {
        let keys: Vec<&String> = item.as_object().expect("record").keys().collect();
        assert_eq!(keys, ["district"], "{item}");
    }

    // A query parameter the route does not accept.
    let path = "/api/v1/persons?page=1&sort=name";
    let out = api.get("dept-health", path, &[]);
    let p = assert_problem(&out, 400, "api.query-not-allowed");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("sort"),
        "names the parameter: {p}"
    );
    assert_refused_event(
        &api.event_for("dept-health", path),
        400,
        "api.query-not-allowed",
    );

    // A path that matches no route.
    let path = "/api/v1/secrets";
    let out = api.get("dept-audit", path, &[]);
    assert_problem(&out, 404, "api.route-unknown");
    assert_refused_event(&api.event_for("dept-audit", path), 404, "api.route-unknown");

    // None of the refused requests reached the API.
    let seen: Vec<String> = api
        .up
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{}?{}",
                r["path"].as_str().unwrap_or(""),
                r["query"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        seen,
        ["/api/v1/persons?page=2&size=3"],
        "only the allowed request went upstream"
    );
    let refusals = api
        .d
        .metric("danxia_http_refusals_total", &[("listener", "api")]);
    assert!(refusals >= 3.0, "refusals counted: {refusals}");
}

#[test]
fn authentication() {
    let api = Api::start(Setup::default());
    let path = "/api/v1/persons/2";

    // No credential.
    let out = curl(&[&api.url(path)]);
    let rule = out_rule(&out);
    assert!(rule.starts_with("api.auth."), "{}", out.text());
    assert_problem(&out, 401, &rule);
    assert!(
        out.header("www-authenticate").is_some(),
        "{:?}",
        out.headers
    );
    // A wrong key.
    let out = curl(&["-H", "x-api-key: dx_not_a_key_0123456789", &api.url(path)]);
    assert_eq!(out.status, 401, "{}", out.text());
    assert!(
        out.header("www-authenticate").is_some(),
        "{:?}",
        out.headers
    );
    let ev = api.request_event(|e| e["status"] == 401);
    assert_eq!(ev["outcome"], "refused", "{ev}");
    assert!(
        ev["rule"].as_str().unwrap_or("").starts_with("api.auth."),
        "{ev}"
    );

    // The API key in the query string works, and is not audited.
    let key = api.key("dept-health").to_string();
    let out = curl(&[&api.url(&format!("/api/v1/persons?api_key={key}&page=1&size=2"))]);
    assert_eq!(out.status, 200, "{}", out.text());
    let ev = api.request_event(|e| e["caller"] == "dept-health" && e["route_id"] == "persons.list");
    let statement = ev["statement"].as_str().expect("statement");
    assert!(!statement.contains(&key), "{ev}");
    assert!(
        !ev.to_string().contains(&key),
        "the key appears nowhere: {ev}"
    );
    assert_eq!(statement, "/api/v1/persons?<api key>&page=1&size=2", "{ev}");

    // JWTs: valid, expired, wrong audience.
    let now = unix_now();
    let good = jwt(&json!({"sub": "dept-health", "aud": AUDIENCE, "exp": now + 300, "iat": now}));
    let out = curl(&[
        "-H",
        &format!("Authorization: Bearer {good}"),
        &api.url(path),
    ]);
    assert_eq!(out.status, 200, "{}", out.text());
    let ev = api.request_event(|e| e["credential"] == "jwt:dept-health");
    assert_eq!(ev["application"], "jwt", "{ev}");
    assert_eq!(ev["caller"], "dept-health", "{ev}");
    assert!(
        !ev.to_string().contains(&good),
        "the token is not audited: {ev}"
    );
    let expired =
        jwt(&json!({"sub": "dept-health", "aud": AUDIENCE, "exp": now - 600, "iat": now - 900}));
    let out = curl(&[
        "-H",
        &format!("Authorization: Bearer {expired}"),
        &api.url(path),
    ]);
    assert_eq!(out.status, 401, "expired: {}", out.text());
    let other = jwt(&json!({"sub": "dept-health", "aud": "someone-else", "exp": now + 300}));
    let out = curl(&[
        "-H",
        &format!("Authorization: Bearer {other}"),
        &api.url(path),
    ]);
    assert_eq!(out.status, 401, "wrong audience: {}", out.text());
    let mut forged = good.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let out = curl(&[
        "-H",
        &format!("Authorization: Bearer {forged}"),
        &api.url(path),
    ]);
    assert_eq!(out.status, 401, "bad signature: {}", out.text());

    // The upstream never saw danxia's credentials, and did see the caller.
    let reqs = api.up.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        let h = &r["headers"];
        assert!(h.get("x-api-key").is_none(), "API key forwarded: {r}");
        assert!(
            h.get("authorization").is_none(),
            "Authorization forwarded: {r}"
        );
        assert_eq!(h["x-danxia-caller"], "dept-health", "{r}");
        assert!(h.get("x-forwarded-for").is_some(), "{r}");
    }

    // A key added while danxia runs starts working; revoked, it stops.
    let (k2, id2) = api_key_add(&api.keys_file, "dept-health");
    let h2 = format!("x-api-key: {k2}");
    let url = api.url(path);
    wait_status(&["-H", &h2, &url], 200, "a key added at run time");
    let out = run(Command::new(bin_path())
        .args(["api", "key", "revoke", &id2, "--keys"])
        .arg(&api.keys_file));
    assert!(
        out.status.success(),
        "revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&["-H", &h2, &url], 401, "a revoked key");
    // The other key of the same caller still works.
    assert_eq!(api.get("dept-health", path, &[]).status, 200);
    let fails = api
        .d
        .metric("danxia_http_auth_failures_total", &[("listener", "api")]);
    assert!(fails >= 5.0, "auth failures counted: {fails}");
    // Last, so that a failure here does not hide the checks above: an API
    // key that came in the query string is danxia's credential too and
    // must not reach the API (or its access logs).
    for r in &reqs {
        assert!(
            !r["query"].as_str().unwrap_or("").contains(&key),
            "query key forwarded: {r}"
        );
    }
}

/// The `rule` of a problem answer (empty when the body is not one).
fn out_rule(out: &CurlOut) -> String {
    serde_json::from_slice::<Value>(&out.body)
        .ok()
        .and_then(|v| v["rule"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Repeats the curl until it answers `status` (≤ WAIT): reloads of the
/// keys file take up to `policy.reload_interval`.
fn wait_status(args: &[&str], status: u16, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = curl(args);
        if out.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} after {WAIT:?}: {}",
            out.status,
            out.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = health_quota_policy(dir.path(), "requests_per_minute", 5);
    let api = Api::start(Setup {
        policy: Some(policy),
        ..Setup::default()
    });
    // Six requests in the same minute (a per-minute counter may be a fixed
    // window: do not straddle its end).
    stay_within_one_minute(10);
    for i in 1..=5 {
        let out = api.get("dept-health", &format!("/api/v1/persons/{i}"), &[]);
        assert_eq!(out.status, 200, "request {i}: {}", out.text());
    }
    let out = api.get("dept-health", "/api/v1/persons/6", &[]);
    assert_problem(&out, 429, "api.quota.requests_per_minute");
    let retry: u64 = out
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds: {:?}", out.headers));
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let ev = api.event_for("dept-health", "/api/v1/persons/6");
    assert_refused_event(&ev, 429, "api.quota.requests_per_minute");
    // Another caller is not affected.
    assert_eq!(api.get("dept-audit", "/api/v1/persons/6", &[]).status, 200);
    // The upstream saw five requests of dept-health, not six.
    let n = api
        .up
        .requests()
        .iter()
        .filter(|r| r["headers"]["x-danxia-caller"] == "dept-health")
        .count();
    assert_eq!(n, 5);
}

#[test]
fn suspend_resume() {
    let api = Api::start(Setup::default());
    assert_eq!(api.get("dept-health", "/api/v1/persons/1", &[]).status, 200);
    let out = api.cli(&[
        "api",
        "suspend",
        "dept-health",
        "--reason",
        "bulk export at 02:00, ticket 4711",
    ]);
    assert!(
        out.status.success(),
        "suspend: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = api.get("dept-health", "/api/v1/persons/2", &[]);
    let p = assert_problem(&out, 403, "api.suspended");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("ticket 4711"),
        "says why: {p}"
    );
    assert_refused_event(
        &api.event_for("dept-health", "/api/v1/persons/2"),
        403,
        "api.suspended",
    );
    // Other callers go on.
    assert_eq!(api.get("dept-audit", "/api/v1/persons/2", &[]).status, 200);
    let evs = api.d.wait_audit(WAIT, |e| {
        e["kind"] == "admin" && e["operation"] == "suspend"
    });
    let admin = evs
        .iter()
        .find(|e| e["kind"] == "admin" && e["operation"] == "suspend")
        .expect("admin event");
    assert_eq!(admin["caller"], "dept-health", "{admin}");
    assert!(
        admin["detail"]
            .as_str()
            .unwrap_or("")
            .contains("ticket 4711"),
        "{admin}"
    );
    let (code, body) = api.d.http_get("/api/suspended");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("dept-health"), "{body}");

    let out = api.cli(&["api", "resume", "dept-health"]);
    assert!(
        out.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = api.get("dept-health", "/api/v1/persons/3", &[]);
    assert_eq!(out.status, 200, "{}", out.text());
    api.d.wait_audit(WAIT, |e| {
        e["kind"] == "admin" && e["operation"] == "resume" && e["caller"] == "dept-health"
    });
    assert!(
        api.d
            .metric("danxia_api_suspensions_total", &[("action", "suspend")])
            >= 1.0
    );
}

#[test]
fn hostile_upstream_bad_json_and_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = pack_copy(
        dir.path(),
        |_, _| {},
        &[("15-test-routes.toml", TEST_ROUTES)],
    );
    let mut api = Api::start(Setup {
        policy: Some(policy),
        ..Setup::default()
    });
    // Malformed JSON that fits the buffer: a clean 502, nothing of it sent.
    let out = api.get("dept-audit", "/api/v1/broken", &[]);
    let p = assert_problem(&out, 502, "api.upstream-bad-json");
    assert!(
        !out.text().contains("\"name\":\"x\""),
        "nothing of the body: {p}"
    );
    assert_refused_event(
        &api.event_for("dept-audit", "/api/v1/broken"),
        502,
        "api.upstream-bad-json",
    );
    // The same chunked: still within the buffer.
    let out = api.get("dept-audit", "/api/v1/broken?mode=chunked", &[]);
    assert_problem(&out, 502, "api.upstream-bad-json");
    // danxia goes on serving.
    let out = api.get("dept-audit", "/api/v1/persons/9", &[]);
    assert_eq!(out.status, 200, "{}", out.text());
    assert_eq!(out.json()["id"], 9);

    // The upstream goes away.
    api.up.kill();
    let out = api.get("dept-audit", "/api/v1/persons/10", &[]);
    assert_problem(&out, 502, "api.upstream-unavailable");
    assert_refused_event(
        &api.event_for("dept-audit", "/api/v1/persons/10"),
        502,
        "api.upstream-unavailable",
    );
    assert_eq!(api.d.http_get("/healthz").0, 200, "danxia still runs");
}

/// danxia with the shipped pack plus the test routes (`TEST_ROUTES`) and
/// default callers; the directory holds the policy copy.
fn with_test_routes() -> (tempfile::TempDir, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = pack_copy(
        dir.path(),
        |_, _| {},
        &[("15-test-routes.toml", TEST_ROUTES)],
    );
    let api = Api::start(Setup {
        policy: Some(policy),
        ..Setup::default()
    });
    (dir, api)
}

/// An upstream answers with valid JSON nested 100 000 arrays deep (200 KB,
/// `/api/v1/broken?mode=nested`): the scanner stops at its depth limit
/// (128) inside the buffer, so the caller gets a bounded 502
/// `api.upstream-bad-json` problem with nothing of the body, the refusal is
/// audited, and danxia goes on serving.
#[test]
fn hostile_upstream_deeply_nested_json() {
    let (_dir, api) = with_test_routes();
    let out = api.get("dept-audit", "/api/v1/broken?mode=nested", &[]);
    let p = assert_problem(&out, 502, "api.upstream-bad-json");
    assert!(
        out.text().len() < 4096 && !out.text().contains("[[[["),
        "a bounded problem, nothing of the body: {p}"
    );
    let ev = api.request_event(|e| {
        e["caller"] == "dept-audit"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with("/api/v1/broken"))
    });
    assert_refused_event(&ev, 502, "api.upstream-bad-json");
    let out = api.get("dept-audit", "/api/v1/persons/9", &[]);
    assert_eq!(out.status, 200, "danxia goes on serving: {}", out.text());
}

#[test]
fn hostile_upstream_malformed_mid_stream() {
    // A buffer smaller than the broken body: the status line and the start
    // of the body go out before the error is found.
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = pack_copy(
        dir.path(),
        |_, _| {},
        &[("15-test-routes.toml", TEST_ROUTES)],
    );
    let api = Api::start(Setup {
        policy: Some(policy),
        buffer_bytes: 16,
        ..Setup::default()
    });
    let out = api.get("dept-audit", "/api/v1/broken?mode=chunked", &[]);
    let complete_json = serde_json::from_slice::<Value>(&out.body).is_ok();
    assert!(
        out.exit != 0 && !complete_json,
        "the transfer must be cut (curl exit 18/56 and incomplete JSON); got status {} exit {} body {:?} stderr {}",
        out.status,
        out.exit,
        out.text(),
        out.stderr
    );
    let ev = api.event_for("dept-audit", "/api/v1/broken?mode=chunked");
    assert_eq!(ev["outcome"], "refused", "{ev}");
    assert_eq!(ev["rule"], "api.upstream-bad-json", "{ev}");
    // Large valid bodies stream fine with the same small buffer.
    let out = api.get("dept-audit", "/api/v1/export?n=300", &[]);
    assert_eq!((out.status, out.exit), (200, 0), "{}", out.stderr);
    assert_eq!(out.json().as_array().map(Vec::len), Some(300));
    // …and so do masked ones.
    let out = api.get("dept-health", "/api/v1/persons?page=1&size=50", &[]);
    assert_eq!((out.status, out.exit), (200, 0), "{}", out.stderr);
    let doc = out.json();
    let items = doc["items"].as_array().expect("items");
    assert_eq!(items.len(), 50);
    assert!(
        items.iter().all(|i| i["id_number"]
            .as_str()
            .is_some_and(|s| s.contains("********"))
            && i.get("address").is_none()),
        "{doc}"
    );
}

#[test]
fn oversized_request_body() {
    let api = Api::start(Setup::default());
    let file = api.tmp.path().join("body.json");
    let small = json!({"name_prefix": "王", "limit": 3});
    // dept-health's max_body is 64 KiB.
    let big = json!({"name_prefix": "王", "limit": 3, "pad": "x".repeat(200 * 1024)});
    std::fs::write(&file, big.to_string()).expect("write body");
    let data = format!("@{}", file.display());
    let url = api.url("/api/v1/search");
    let key = format!("x-api-key: {}", api.key("dept-health"));
    let ct = "content-type: application/json";

    let out = curl(&[
        "-X",
        "POST",
        "-H",
        &key,
        "-H",
        ct,
        "--data-binary",
        &small.to_string(),
        &url,
    ]);
    assert_eq!(out.status, 200, "a small search passes: {}", out.text());
    let doc = out.json();
    for item in doc["items"].as_array().expect("items") {
        assert!(
            item["name"].as_str().is_some_and(|n| n.starts_with('王')),
            "{item}"
        );
        assert!(item.get("address").is_none(), "{item}");
    }

    // With Content-Length: refused before forwarding.
    let out = curl(&[
        "-X",
        "POST",
        "-H",
        &key,
        "-H",
        ct,
        "--data-binary",
        &data,
        &url,
    ]);
    assert_problem(&out, 413, "api.body-too-large");
    // Chunked: refused once the limit is crossed.
    let out = curl(&[
        "-X",
        "POST",
        "-H",
        &key,
        "-H",
        ct,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &url,
    ]);
    assert_problem(&out, 413, "api.body-too-large");
    let evs = api.d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "request" && e["rule"] == "api.body-too-large"
    });
    for ev in &evs {
        assert_refused_event(ev, 413, "api.body-too-large");
        assert_eq!(ev["caller"], "dept-health", "{ev}");
    }
    // The Content-Length one never reached the API with its body.
    let searches: Vec<Value> = api
        .up
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/v1/search")
        .collect();
    assert!(
        searches.iter().all(|r| r["headers"]["content-length"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            < 64 * 1024),
        "{searches:?}"
    );
}

#[test]
fn streaming_large_response() {
    let (_dir, api) = with_test_routes();
    // All fields, no masks: byte for byte what the API sent.
    let path = "/api/v1/export?n=20000";
    let out = api.get("dept-audit", path, &[]);
    assert_eq!((out.status, out.exit), (200, 0), "{}", out.stderr);
    let direct = curl(&[&format!("{}{path}", api.up.url())]);
    assert_eq!(direct.status, 200);
    assert!(
        out.body == direct.body,
        "the export differs from the upstream's ({} vs {} bytes)",
        out.body.len(),
        direct.body.len()
    );
    let doc = out.json();
    assert_eq!(doc.as_array().map(Vec::len), Some(20000));
    let ev = api.event_for("dept-audit", path);
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert_eq!(ev["records"], 20000, "{ev}");
    assert_eq!(ev["sensitive"]["pii.id_number"], 20000, "{ev}");
    assert_eq!(ev["bytes_out"], out.body.len(), "{ev}");

    // dept-health's grant covers the export: the same records, masked,
    // streamed through the rewriter.
    let out = api.get("dept-health", path, &[]);
    assert_eq!((out.status, out.exit), (200, 0), "{}", out.stderr);
    let masked = out.json();
    let masked = masked.as_array().expect("array");
    assert_eq!(masked.len(), 20000);
    let granted: BTreeSet<&str> = HEALTH_FIELDS.into_iter().collect();
    for (m, o) in masked.iter().zip(doc.as_array().expect("array")) {
        let keys: BTreeSet<&str> = m
            .as_object()
            .expect("record")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, granted, "{m}");
        assert_eq!(m["name"], o["name"], "{m}");
        let (mi, oi) = (
            m["id_number"].as_str().unwrap_or(""),
            o["id_number"].as_str().unwrap_or(""),
        );
        if mi == oi || mi.chars().take(6).ne(oi.chars().take(6)) || !mi.contains("********") {
            panic!("id_number not keep(6,4): {mi} for {oi}");
        }
    }
    let ev = api.event_for("dept-health", path);
    assert_eq!(ev["records"], 20000, "{ev}");
    assert_eq!(ev["removed"], 40000, "id and address of each record: {ev}");
    assert_eq!(ev["masked"], 40000, "{ev}");
    let health_ev = ev;
    // 20 000 records are over dept-health's 5 000 records a minute.
    let out = api.get("dept-health", "/api/v1/persons/1", &[]);
    assert_problem(&out, 429, "api.quota.records_per_minute");

    // 200 MB through danxia in bounded memory.
    let pid = api.d.pid();
    let before = vm_rss_kib(pid).expect("VmRSS");
    let key = format!("x-api-key: {}", api.key("dept-audit"));
    let mut child = Command::new("curl")
        .args([
            "-s",
            "-S",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            "--max-time",
            "100",
            "-H",
            &key,
        ])
        .arg(api.url("/api/v1/huge?mb=200"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(110);
    let status = loop {
        if let Some(rss) = vm_rss_kib(pid) {
            peak = peak.max(rss);
        }
        if let Some(st) = child.try_wait().expect("curl wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the 200 MB transfer did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut so = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut so).ok();
    assert!(status.success(), "curl: {status} {so}");
    let mut parts = so.split_whitespace();
    assert_eq!(parts.next(), Some("200"), "{so}");
    let size: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(size >= 200 * 1024 * 1024 - 4096, "200 MiB arrived: {size}");
    assert!(
        peak < MAX_RSS_KIB,
        "danxia's RSS reached {peak} KiB (from {before} KiB) streaming 200 MB"
    );
    let ev = api.event_for("dept-audit", "/api/v1/huge?mb=200");
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert!(ev["records"].as_u64().is_some_and(|n| n > 500_000), "{ev}");
    eprintln!("streaming 200 MB: danxia RSS {before} KiB before, peak {peak} KiB");
    // Last, so that a failure here does not hide the checks above.
    assert!(
        health_ev["sensitive"].get("pii.id_number").is_none(),
        "masked identity numbers did not leave in the clear: {health_ev}"
    );
}

#[test]
fn gzip() {
    let api = Api::start(Setup::default());
    let path = "/api/v1/persons?page=3&size=5";
    let plain = api.get("dept-health", path, &[]);
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.header("content-encoding"), None);
    let gz = api.get(
        "dept-health",
        path,
        &["--compressed", "-H", "X-Test-Gzip: 1"],
    );
    assert_eq!((gz.status, gz.exit), (200, 0), "{}", gz.stderr);
    assert_eq!(
        gz.header("content-encoding"),
        Some("gzip"),
        "{:?}",
        gz.headers
    );
    assert_eq!(
        gz.json(),
        plain.json(),
        "decoded gzip is masked like identity"
    );
    assert!(gz.json()["items"][0]["id_number"]
        .as_str()
        .is_some_and(|s| s.contains('*')));
    // The upstream really answered gzip.
    let reqs = api.up.requests();
    assert!(
        reqs.iter().any(|r| r["headers"]["x-test-gzip"] == "1"
            && r["headers"]["accept-encoding"]
                .as_str()
                .is_some_and(|a| a.contains("gzip"))),
        "{reqs:?}"
    );
    let evs = api.d.wait_audit_count(WAIT, 2, |e| {
        e["kind"] == "request" && e["statement"] == path
    });
    for ev in &evs {
        assert_eq!(ev["masked"], 10, "{ev}");
        assert_eq!(ev["records"], 5, "{ev}");
    }
}

#[test]
fn http2() {
    let api = Api::start(Setup::default());
    let out = api.get(
        "dept-health",
        "/api/v1/persons/4",
        &["--http2-prior-knowledge", "-v"],
    );
    assert_eq!((out.status, out.exit), (200, 0), "{}", out.stderr);
    assert!(
        out.stderr.contains("HTTP/2 200"),
        "spoke HTTP/2: {}",
        out.stderr
    );
    let doc = out.json();
    assert!(
        doc.get("id").is_none() && doc["id_number"].as_str().is_some_and(|s| s.contains('*')),
        "{doc}"
    );
    let ev = api.event_for("dept-health", "/api/v1/persons/4");
    assert_eq!(ev["protocol_flow"], "h2", "{ev}");
    assert_eq!(ev["records"], 1, "{ev}");
    // A large response over HTTP/2 streams too.
    let out = api.get(
        "dept-audit",
        "/api/v1/export?n=2000",
        &["--http2-prior-knowledge"],
    );
    assert_eq!((out.status, out.exit), (200, 0), "{}", out.stderr);
    assert_eq!(out.json().as_array().map(Vec::len), Some(2000));
}

#[test]
fn python_requests_session() {
    let api = Api::start(Setup::default());
    let script = workspace_root().join("tests/clients/api_requests.py");
    let out = run(python().arg(&script).args([
        "--base",
        &api.url(""),
        "--key",
        api.key("dept-health"),
        "--n",
        "50",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim()).expect("summary line");
    assert_eq!(summary["requests"], 50);
    assert_eq!(summary["statuses"]["200"], 50, "{summary}");
    let evs = api.d.wait_audit_count(WAIT, 50, |e| {
        e["kind"] == "request" && e["caller"] == "dept-health"
    });
    assert_eq!(evs.len(), 50);
    let sessions: BTreeSet<&str> = evs.iter().filter_map(|e| e["session"].as_str()).collect();
    assert_eq!(sessions.len(), 1, "one keep-alive connection: {sessions:?}");
    assert!(
        evs.iter().all(|e| e["status"] == 200 && e["masked"] == 2),
        "{evs:?}"
    );
}

#[test]
fn metrics_use_route_templates() {
    let api = Api::start(Setup::default());
    let key = format!("x-api-key: {}", api.key("dept-health"));
    // One curl, 20 requests on one connection.
    let urls: Vec<String> = (1..=20)
        .map(|i| api.url(&format!("/api/v1/persons/{i}")))
        .collect();
    let mut args: Vec<&str> = vec!["-H", &key, "-o", "/dev/null"];
    for u in &urls {
        args.push(u);
    }
    let out = curl(&args);
    assert_eq!(out.exit, 0, "{}", out.stderr);
    api.d.wait_audit_count(WAIT, 20, |e| {
        e["kind"] == "request" && e["route"] == "/api/v1/persons/{id}"
    });
    let text = api.d.metrics();
    let n = metric_sum(
        &text,
        "danxia_http_requests_total",
        &[
            ("listener", "api"),
            ("route", "/api/v1/persons/{id}"),
            ("method", "GET"),
            ("status", "2xx"),
        ],
    );
    assert_eq!(n, Some(20.0), "{text}");
    assert!(
        !text.contains("\"/api/v1/persons/1"),
        "no raw path in any label:\n{text}"
    );
    assert!(
        metric_sum(
            &text,
            "danxia_http_records_total",
            &[("route", "/api/v1/persons/{id}")]
        ) == Some(20.0),
        "{text}"
    );
    assert!(
        metric_sum(
            &text,
            "danxia_http_request_duration_seconds_count",
            &[("route", "/api/v1/persons/{id}")]
        )
        .is_some(),
        "{text}"
    );
    // Last, so that a failure here does not hide the checks above: the
    // identity numbers were found in all 20 responses, and masked.
    assert!(
        metric_sum(
            &text,
            "danxia_http_sensitive_values_total",
            &[("tag", "pii.id_number"), ("state", "masked")]
        )
        .unwrap_or(0.0)
            >= 20.0,
        "{text}"
    );
    assert!(
        metric_sum(
            &text,
            "danxia_http_sensitive_values_total",
            &[("tag", "pii.id_number"), ("state", "clear")]
        )
        .is_none(),
        "{text}"
    );
}

/// Behaviour clock speed in the enumeration test: behaviour seconds per
/// real second. With a 300 s window one window lasts 3 real seconds.
const ENUM_SPEED: f64 = 100.0;
const ENUM_WINDOW_S: u64 = 300;

#[test]
fn enumeration_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = pack_copy(
        dir.path(),
        |id, t| {
            if id == "dept-health" {
                t.insert("anomaly".into(), toml::Value::Float(5.0));
                t.remove("block_anomaly");
                set_quota(t, "requests_per_minute", 100_000);
                set_quota(t, "records_per_minute", 1_000_000);
            }
        },
        &[],
    );
    // The behaviour clock starts at a window boundary now.
    let anchor = unix_now() as f64;
    let start = "2026-03-02T02:00:00Z"; // a Monday, 10:00 in Shanghai
    let api = Api::start(Setup {
        policy: Some(policy),
        behaviour: format!(
            "window = \"{ENUM_WINDOW_S}s\"\nlearning = \"1s\"\nmin_active_windows = 2\n\
             [behaviour.clock]\nstart = \"{start}\"\nanchor = {anchor}\nspeed = {ENUM_SPEED}\n"
        ),
        ..Setup::default()
    });
    let window_real = ENUM_WINDOW_S as f64 / ENUM_SPEED;
    // Real time at which behaviour window `k` (counted from the clock's
    // start) begins.
    let window_at = |k: u64| anchor + k as f64 * window_real;
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
    };
    let sleep_until = |t: f64| {
        let d = t - now();
        if d > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(d));
        }
    };
    let key = format!("x-api-key: {}", api.key("dept-health"));
    let first = ((now() - anchor) / window_real).floor() as u64 + 1;
    // Normal work: ids 1..3, a few times, in each of 7 windows.
    for k in first..first + 7 {
        sleep_until(window_at(k) + 0.1);
        let urls: Vec<String> = (0..6)
            .map(|i| api.url(&format!("/api/v1/persons/{}", 1 + i % 3)))
            .collect();
        let mut args: Vec<&str> = vec!["-H", &key, "-o", "/dev/null"];
        args.extend(urls.iter().map(String::as_str));
        let out = curl(&args);
        assert_eq!(out.exit, 0, "{}", out.stderr);
    }
    // Then walk 300 ids within one window.
    let burst = first + 7;
    sleep_until(window_at(burst) + 0.1);
    let urls: Vec<String> = (1..=300)
        .map(|i| api.url(&format!("/api/v1/persons/{i}")))
        .collect();
    let mut args: Vec<&str> = vec!["-H", &key, "-o", "/dev/null"];
    args.extend(urls.iter().map(String::as_str));
    let t = Instant::now();
    let out = curl(&args);
    let took = t.elapsed();
    assert_eq!(out.exit, 0, "{}", out.stderr);
    assert!(
        took.as_secs_f64() < window_real - 0.2,
        "the walk took {took:?}, longer than a window ({window_real} s): the test cannot judge"
    );
    let enumerates = |e: &Value| {
        e["kind"] == "alert"
            && e["evidence"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["measure"] == "enumeration"))
    };
    let evs = api.d.wait_audit(WAIT, enumerates);
    let alert = evs.iter().find(|e| enumerates(e)).expect("alert");
    assert!(
        alert["identity"]
            .as_str()
            .is_some_and(|s| s.starts_with("dept-health|api|")),
        "{alert}"
    );
    assert!(
        alert["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "api.anomaly")),
        "{alert}"
    );
    assert_eq!(
        alert["caller"], "dept-health",
        "the alert names the caller: {alert}"
    );
    assert!(
        alert["statement"]
            .as_str()
            .is_some_and(|s| s.starts_with("/api/v1/persons/")),
        "{alert}"
    );
}

#[test]
fn rate_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = health_quota_policy(dir.path(), "requests_per_second", 3);
    let api = Api::start(Setup {
        policy: Some(policy),
        ..Setup::default()
    });
    // A burst of ten: the bucket holds three, refilling at three per second;
    // curl takes well under a second for ten loopback requests.
    let mut statuses = Vec::new();
    let t = Instant::now();
    for i in 1..=10 {
        statuses.push(api.get("dept-health", &format!("/api/v1/persons/{i}"), &[]));
    }
    let took = t.elapsed().as_secs_f64();
    let ok = statuses.iter().filter(|o| o.status == 200).count();
    let limited: Vec<_> = statuses.iter().filter(|o| o.status == 429).collect();
    // At most the burst plus what refilled meanwhile.
    assert!(
        ok >= 3 && (ok as f64) <= 3.0 + 3.0 * took + 1.0,
        "{ok} admitted in {took:.2} s"
    );
    assert_eq!(ok + limited.len(), 10);
    let first = limited.first().expect("some requests are rate limited");
    assert_problem(first, 429, "api.rate");
    assert!(first.header("retry-after").is_some());
    // After a second the bucket has refilled.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(api.get("dept-health", "/api/v1/persons/1", &[]).status, 200);
}

/// Sends `bytes` on a new connection to danxia's api listener and reads
/// until danxia closes it or `wait` passes: (what came back, closed).
fn raw_exchange(port: u16, bytes: &[u8], wait: Duration) -> (String, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[test]
fn hostile_clients_get_bounded_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = pack_copy(
        dir.path(),
        |_, _| {},
        &[("15-test-routes.toml", TEST_ROUTES)],
    );
    let api = Api::start(Setup {
        policy: Some(policy),
        http: "header_timeout = \"1s\"".into(),
        ..Setup::default()
    });
    let key = api.key("dept-audit").to_string();
    // Oversized request headers: refused with 431, not buffered.
    let big = format!(
        "GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nx-pad: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let (got, _) = raw_exchange(api.port, big.as_bytes(), Duration::from_secs(5));
    assert!(
        got.starts_with("HTTP/1.1 431"),
        "oversized headers: {got:?}"
    );
    // Garbage instead of a request line: 400 and the connection closed.
    let (got, closed) = raw_exchange(
        api.port,
        b"\x00\x01\x02 not http\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        got.starts_with("HTTP/1.1 400") || got.is_empty(),
        "garbage: {got:?}"
    );
    assert!(closed, "garbage: the connection must be closed");
    // A client that never finishes its headers is cut after header_timeout.
    let t = Instant::now();
    let (_, closed) = raw_exchange(
        api.port,
        b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(6),
    );
    assert!(closed, "a half-sent request must be closed by danxia");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        t.elapsed()
    );
    // The upstream dies in the middle of its body: 502, audited.
    let out = api.get("dept-audit", "/api/v1/broken?mode=cut", &[]);
    assert_problem(&out, 502, "api.upstream-aborted");
    let ev = api.event_for("dept-audit", "/api/v1/broken?mode=cut");
    assert_eq!(ev["outcome"], "refused", "{ev}");
    // The client goes away in the middle of a large streamed response: the
    // exchange is audited as aborted, with what was counted so far.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", api.port)).expect("connect");
        write!(
            s,
            "GET /api/v1/huge?mb=64 HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\n\r\n"
        )
        .expect("send");
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0;
        while n < buf.len() {
            match s.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        assert!(n > 1024, "some of the body arrived ({n} bytes)");
    }
    let ev =
        api.request_event(|e| e["statement"] == "/api/v1/huge?mb=64" && e["outcome"] == "aborted");
    assert_eq!(ev["caller"], "dept-audit", "{ev}");
    assert_eq!(ev["rule"], "api.client-gone", "{ev}");
    // None of this hurt the next caller.
    assert_eq!(api.get("dept-health", "/api/v1/persons/1", &[]).status, 200);
}

/// Two danxia instances sharing caller state through the real Redis: a
/// suspension on one refuses the caller on the other, and their request
/// counts add up against one quota.
#[test]
fn redis_shares_quotas_and_suspensions_between_instances() {
    let prefix = format!(
        "danxia-e2e-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = health_quota_policy(dir.path(), "requests_per_minute", 6);
    let setup = || {
        Setup {
        policy: Some(policy.clone()),
        api_store: format!(
            "store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/\"\nredis_prefix = \"{prefix}\"\nsync_interval = \"200ms\""
        ),
        ..Setup::default()
    }
    };
    let a = Api::start(setup());
    let b = Api::start(setup());
    // Stay inside one minute window.
    stay_within_one_minute(15);
    for i in 1..=3 {
        assert_eq!(
            a.get("dept-health", &format!("/api/v1/persons/{i}"), &[])
                .status,
            200
        );
        assert_eq!(
            b.get("dept-health", &format!("/api/v1/persons/{i}"), &[])
                .status,
            200
        );
    }
    // Once both have synced, six are used between them.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = a.get("dept-health", "/api/v1/persons/7", &[]);
        if out.status == 429 {
            assert_problem(&out, 429, "api.quota.requests_per_minute");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance A never saw B's requests: {} {}",
            out.status,
            out.text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A suspension made on A reaches B.
    let o = a.cli(&["api", "suspend", "dept-stats", "--reason", "shared test"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + WAIT;
    loop {
        let out = b.get("dept-stats", "/api/v1/stats", &[]);
        if out.status == 403 {
            assert_problem(&out, 403, "api.suspended");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never saw the suspension: {}",
            out.status
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = b.cli(&["api", "resume", "dept-stats"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + WAIT;
    while a.get("dept-stats", "/api/v1/stats", &[]).status != 200 {
        assert!(Instant::now() < deadline, "A never saw the resume");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Clean up what the test wrote to Redis.
    let _ = Command::new("redis-cli")
        .args(["--scan", "--pattern", &format!("{prefix}:*")])
        .output()
        .map(|o| {
            for k in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = Command::new("redis-cli").args(["del", k]).output();
            }
        });
}
