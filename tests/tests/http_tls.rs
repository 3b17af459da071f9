//! TLS on the HTTP API listener, end to end with real curl, the real
//! danxia binary and the synthetic citizen-records API
//! (`tests/upstream/citizens_api.py`, over HTTPS with `--tls`):
//!
//! - the HTTPS listener: curl `--cacert` over HTTP/1.1 and HTTP/2 (ALPN),
//!   the caller's grant applied as over plain HTTP (masked fields), the
//!   audit's `tls`; plain HTTP on the HTTPS port gets a 400 that says to
//!   use https://;
//! - mTLS API callers: a client certificate whose CN is a declared caller
//!   is that caller (no API key needed; audited `mtls:<subject>`), an
//!   explicit `[[listener.auth.mtls]]` mapping, an unknown certificate and
//!   a certificate that disagrees with the API key are 401s;
//!   `client_auth = "required"` refuses a client without a certificate at
//!   the handshake;
//! - https upstreams verified against the upstream's CA; a wrong CA is a
//!   502 whose problem document names the TLS failure;
//! - certificate reload on the HTTPS listener without restart.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use danxia_e2e::tls::{CertFiles, TestPki};
use danxia_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);
const SEED: u64 = 11;

/// One test's world.
struct Env {
    d: Danxia,
    up: Upstream,
    port: u16,
    keys: HashMap<String, String>,
    pki: TestPki,
    server: CertFiles,
    /// Kept last: certificates, keys and the keys file live here.
    _tmp: tempfile::TempDir,
}

/// What differs between the set-ups.
#[derive(Default)]
struct Setup {
    /// `client_ca` = the test CA in `[listener.tls]` (mTLS).
    client_ca: bool,
    /// Extra lines of `[listener.tls]` (after cert and key).
    tls: String,
    /// Extra lines of `[listener.auth]`, and tables after it.
    auth: String,
    /// The upstream serves HTTPS with a certificate of the test CA.
    https_upstream: bool,
    /// Extra `[[listener.upstream]]` tables (`{url}` replaced by the
    /// upstream's https URL).
    more_upstreams: String,
}

impl Env {
    fn start(setup: Setup) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("danxia-https-")
            .tempdir()
            .expect("tempdir");
        let pki = TestPki::new(&tmp.path().join("pki"), "api");
        let server = pki.server("server", "danxia-api");
        let up_cert = pki.server("upstream", "citizens-api");
        let up = if setup.https_upstream {
            Upstream::start_tls(SEED, &up_cert.cert, &up_cert.key)
        } else {
            Upstream::start(SEED)
        };
        let up_url = if setup.https_upstream {
            format!("https://localhost:{}", up.port)
        } else {
            up.url()
        };
        let keys_file = tmp.path().join("keys.toml");
        let mut keys = HashMap::new();
        for caller in ["dept-health", "dept-stats", "dept-audit"] {
            keys.insert(caller.to_string(), api_key_add(&keys_file, caller).0);
        }
        let s = |p: &Path| toml_str(&p.display().to_string());
        let upstream_ca = if setup.https_upstream {
            format!("ca = {}\n", s(&pki.ca_cert))
        } else {
            String::new()
        };
        let port = free_port();
        let extra_toml = format!(
            "[[listener]]\nname = \"api\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:{port}\"\n\
             api_policy = {policy}\n\
             [[listener.upstream]]\nprefix = \"/api/\"\nurl = \"{up_url}\"\n{upstream_ca}\
             {more}\n\
             [listener.tls]\n{tls}\n\
             [listener.auth]\napi_key_header = \"x-api-key\"\nkeys_file = {keys}\n{auth}\n\n\
             [api]\nstore = \"memory\"\ntimezone = \"{tz}\"\n",
            policy = s(&workspace_root().join("policies/packs/api-example")),
            more = setup.more_upstreams.replace("{url}", &up_url),
            tls = pki.listener_tls(
                &server,
                &format!(
                    "{}{}",
                    if setup.client_ca {
                        pki.client_ca_line()
                    } else {
                        String::new()
                    },
                    setup.tls
                )
            ),
            keys = s(&keys_file),
            auth = setup.auth,
            tz = daytime_zone(),
        );
        let d = Danxia::start_with(Options {
            extra_toml,
            ..Options::default()
        });
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "api listener:\n{}", d.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        Env {
            d,
            up,
            port,
            keys,
            pki,
            server,
            _tmp: tmp,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// curl `path` with `--cacert` (the test CA) and `extra`.
    fn curl(&self, path: &str, extra: &[&str]) -> CurlOut {
        let ca = self.pki.ca_cert.display().to_string();
        let url = self.url(path);
        let mut args: Vec<&str> = vec!["--cacert", &ca];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    fn key_header(&self, caller: &str) -> String {
        format!("x-api-key: {}", self.keys[caller])
    }

    /// A client certificate `CN=<cn>,O=<org>` of the test CA.
    fn client_cert(&self, cn: &str, org: &str) -> CertFiles {
        self.pki.client(&format!("client-{cn}"), cn, Some(org))
    }

    fn request_event(&self, pred: impl Fn(&Value) -> bool) -> Value {
        self.d
            .wait_audit(WAIT, |e| e["kind"] == "request" && pred(e))
            .into_iter()
            .filter(|e| e["kind"] == "request" && pred(e))
            .last()
            .expect("a matching event")
    }
}

fn cert_args(c: &CertFiles) -> [String; 4] {
    [
        "--cert".into(),
        c.cert.display().to_string(),
        "--key".into(),
        c.key.display().to_string(),
    ]
}

/// Asserts a problem answer with `status` and `rule`.
fn assert_problem(out: &CurlOut, status: u16, rule: &str) -> Value {
    assert_eq!(out.status, status, "{}: {}", out.stderr, out.text());
    let p = out.json();
    assert_eq!(p["rule"], rule, "{p}");
    p
}

/// The dept-health view of a person list: identity numbers and phones
/// masked, addresses gone.
fn assert_health_view(got: &Value, direct: &Value) {
    let items = got["items"].as_array().expect("items");
    let want = direct["items"].as_array().expect("upstream items");
    assert_eq!(items.len(), want.len(), "{got}");
    for (g, w) in items.iter().zip(want) {
        assert_eq!(g["name"], w["name"], "{g}");
        assert!(g.get("address").is_none(), "address removed: {g}");
        let id = g["id_number"].as_str().expect("id_number");
        let wid = w["id_number"].as_str().expect("upstream id_number");
        assert_ne!(id, wid, "masked");
        assert_eq!(&id[..6], &wid[..6]);
        assert!(id[6..id.len() - 4].chars().all(|c| c == '*'), "{id}");
    }
}

#[test]
fn https_listener_http1_h2_and_mtls_callers() {
    let env = Env::start(Setup {
        client_ca: true,
        tls: "client_auth = \"optional\"\n".into(),
        auth: "[[listener.auth.mtls]]\nsubject = \"CN=stats-gateway,O=Statistics\"\ncaller = \"dept-stats\"\n"
            .into(),
        ..Setup::default()
    });
    let path = "/api/v1/persons?page=1&size=3";
    let (code, direct) = env.up.get(path);
    assert_eq!(code, 200);
    let direct: Value = serde_json::from_str(&direct).expect("upstream JSON");

    // HTTP/1.1 and HTTP/2 over TLS with an API key.
    let h = env.key_header("dept-health");
    for (flag, flow) in [("--http1.1", "http/1.1"), ("--http2", "h2")] {
        let out = env.curl(path, &[flag, "-H", &h]);
        assert_eq!(out.status, 200, "{flag}: {} {}", out.stderr, out.text());
        assert_health_view(&out.json(), &direct);
        let ev = env.request_event(|e| e["protocol_flow"] == flow && e["statement"] == path);
        assert_eq!(ev["caller"], "dept-health", "{ev}");
        assert!(
            ev["tls"].as_str().is_some_and(|v| v.starts_with("TLSv1.")),
            "{ev}"
        );
        assert!(ev.get("tls_subject").is_none(), "no certificate: {ev}");
    }
    let requests: Vec<Value> = env
        .up
        .requests()
        .into_iter()
        .filter(|r| r["headers"]["x-danxia-caller"].is_string())
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r["headers"]["x-forwarded-proto"] == "https"),
        "the API learns the caller used https: {requests:?}"
    );

    // A certificate whose CN is a declared caller: that caller, no key.
    let health = env.client_cert("dept-health", "Health");
    let args = cert_args(&health);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.curl("/api/v1/persons?page=2&size=3", &a);
    assert_eq!(out.status, 200, "{} {}", out.stderr, out.text());
    let (_, direct2) = env.up.get("/api/v1/persons?page=2&size=3");
    assert_health_view(&out.json(), &serde_json::from_str(&direct2).expect("json"));
    let ev = env.request_event(|e| e["statement"] == "/api/v1/persons?page=2&size=3");
    assert_eq!(ev["caller"], "dept-health", "{ev}");
    assert_eq!(ev["application"], "mtls", "{ev}");
    assert_eq!(ev["credential"], "mtls:CN=dept-health,O=Health", "{ev}");
    assert_eq!(ev["tls_subject"], "CN=dept-health,O=Health", "{ev}");

    // The same certificate with the API key of the same caller: fine; with
    // another caller's key: refused.
    let mut with_key = a.clone();
    with_key.extend(["-H", &h]);
    let out = env.curl("/api/v1/persons?page=3&size=1", &with_key);
    assert_eq!(out.status, 200, "{}", out.text());
    let other = env.key_header("dept-audit");
    let mut mismatch = a.clone();
    mismatch.extend(["-H", &other]);
    let out = env.curl("/api/v1/persons?page=4&size=1", &mismatch);
    let p = assert_problem(&out, 401, "api.auth.credential_mismatch");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dept-health") && d.contains("dept-audit")),
        "{p}"
    );

    // An explicit mapping: the statistics gateway's certificate is
    // dept-stats, whose grant keeps only districts.
    let gw = env.client_cert("stats-gateway", "Statistics");
    let args = cert_args(&gw);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.curl("/api/v1/persons?page=1&size=2", &a);
    assert_eq!(out.status, 200, "{}", out.text());
    let got = out.json();
    for item in got["items"].as_array().expect("items") {
        let keys: Vec<&str> = item
            .as_object()
            .expect("obj")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["district"], "{got}");
    }
    let ev = env.request_event(|e| e["statement"] == "/api/v1/persons?page=1&size=2");
    assert_eq!(ev["caller"], "dept-stats", "{ev}");
    assert_eq!(
        ev["credential"], "mtls:CN=stats-gateway,O=Statistics",
        "{ev}"
    );

    // A certificate of the CA that is nobody's: 401, clearly.
    let stranger = env.client_cert("intruder", "Elsewhere");
    let args = cert_args(&stranger);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.curl(path, &a);
    let p = assert_problem(&out, 401, "api.auth.unknown_certificate");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("CN=intruder")),
        "{p}"
    );
    assert_eq!(
        env.d.metric(
            "danxia_http_auth_failures_total",
            &[("listener", "api"), ("reason", "unknown_certificate")]
        ),
        1.0
    );

    // Plain HTTP on the HTTPS port: a 400 that says what to do.
    let out = curl(&[&format!("http://127.0.0.1:{}{path}", env.port)]);
    let p = assert_problem(&out, 400, "api.tls-required");
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("https://")),
        "{p}"
    );
    assert_eq!(
        env.d
            .metric("danxia_tls_plaintext_refused_total", &[("listener", "api")]),
        1.0
    );
    // Garbage that is not HTTP either: no crash, the next client is served.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", env.port)).expect("connect");
    let _ = std::io::Write::write_all(&mut s, b"\x16\x03\x01\x00\x05garbagegarbage");
    drop(s);
    let out = env.curl(path, &["-H", &h]);
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(env.d.audit_verify().status.success());
}

#[test]
fn client_auth_required_refuses_at_the_handshake() {
    let env = Env::start(Setup {
        client_ca: true,
        tls: "client_auth = \"required\"\n".into(),
        ..Setup::default()
    });
    let h = env.key_header("dept-audit");
    let out = env.curl("/api/v1/stats", &["-H", &h]);
    assert_eq!(
        out.status,
        0,
        "served without a certificate: {}",
        out.text()
    );
    assert_ne!(out.exit, 0, "curl must fail: {}", out.stderr);
    let audit = env.client_cert("dept-audit", "Audit");
    let args = cert_args(&audit);
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["-H", &h]);
    let out = env.curl("/api/v1/stats", &a);
    assert_eq!(out.status, 200, "{} {}", out.stderr, out.text());
    env.d.wait_metric(
        WAIT,
        "danxia_tls_handshakes_total",
        &[("listener", "api"), ("result", "failed")],
        |v| v >= 1.0,
    );
}

#[test]
fn https_upstream_verified_and_wrong_ca_is_502() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let other = TestPki::new(tmp.path(), "other");
    let env = Env::start(Setup {
        https_upstream: true,
        more_upstreams: format!(
            "[[listener.upstream]]\nprefix = \"/api/\"\nhost = \"wrong-ca.example\"\nurl = \"{{url}}\"\nca = {}\n",
            toml_str(&other.ca_cert.display().to_string())
        ),
        ..Setup::default()
    });
    let h = env.key_header("dept-health");
    let path = "/api/v1/persons?page=1&size=4";
    let out = env.curl(path, &["-H", &h]);
    assert_eq!(
        out.status,
        200,
        "{} {}\n{}",
        out.stderr,
        out.text(),
        env.d.stderr()
    );
    // The upstream itself, over its own TLS, for the expected records.
    let direct = curl(&[
        "--cacert",
        &env.pki.ca_cert.display().to_string(),
        &format!("https://localhost:{}{path}", env.up.port),
    ]);
    assert_eq!(direct.status, 200, "{}", direct.stderr);
    assert_health_view(&out.json(), &direct.json());
    let ev = env.request_event(|e| e["statement"] == path);
    assert_eq!(
        ev["upstream"],
        format!("https://localhost:{}", env.up.port),
        "{ev}"
    );

    // The same API through an upstream entry whose CA is wrong.
    let out = env.curl(path, &["-H", &h, "-H", "Host: wrong-ca.example"]);
    let p = assert_problem(&out, 502, "api.upstream-tls");
    let detail = p["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("TLS") && detail.contains("certificate") && detail.contains("ca"),
        "names the TLS failure: {p}"
    );
}

#[test]
fn https_listener_certificate_reload() {
    let env = Env::start(Setup::default());
    let subject = |env: &Env| -> String {
        let out = run(Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", env.port))
            .args(["-servername", "localhost", "-CAfile"])
            .arg(&env.pki.ca_cert)
            .stdin(std::process::Stdio::null()));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("subject="))
            .unwrap_or("")
            .to_string()
    };
    assert!(subject(&env).contains("danxia-api"), "{}", subject(&env));
    // A new certificate written over the files in place.
    let renewed = env.pki.server("renewed", "danxia-api-renewed");
    std::fs::copy(&renewed.cert, &env.server.cert).expect("copy cert");
    std::fs::copy(&renewed.key, &env.server.key).expect("copy key");
    env.d.wait_metric(
        WAIT,
        "danxia_tls_reloads_total",
        &[("listener", "api"), ("result", "ok")],
        |v| v >= 1.0,
    );
    assert!(
        subject(&env).contains("danxia-api-renewed"),
        "{}",
        subject(&env)
    );
    let h = env.key_header("dept-audit");
    let out = env.curl("/api/v1/stats", &["-H", &h]);
    assert_eq!(out.status, 200, "{}", out.text());
}
