//! Files others could change or read are not trusted (docs/operator-guide.md,
//! "File permissions danxia insists on"): a policy file every user can
//! write, a masking key or TLS private key others can read, stop start-up
//! with the file, its mode and the `chmod` that fixes it; a group-writable
//! policy file starts with a warning; a reload that finds a world-writable
//! policy file is refused and the running policy stays.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use danxia_e2e::tls::TestPki;
use danxia_e2e::*;
use serde_json::Value;

const POLICY: &str = "[[rule]]\nid = \"deny-perm-probe\"\ndescription = \"probe\"\naction = \"deny\"\ntables = [\"perm_probe_never_exists\"]\n";

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A policy directory holding one file with `mode`; returns (dir, file).
fn policy_dir(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("10-probe.toml");
    fs::write(&file, POLICY).expect("write policy");
    chmod(&file, mode);
    (dir, file)
}

fn policy_toml(dir: &Path, extra: &str) -> String {
    format!(
        "[policy]\ndir = {}\nallowlist = {}\n{extra}",
        toml_str(&dir.display().to_string()),
        toml_str(&dir.join("allowlist.toml").display().to_string())
    )
}

/// The text of a configuration that is expected not to start (its audit
/// directory is `audit` under `scratch`, never a shared path: a refusal
/// after the audit log opened must not disturb other tests).
fn config_with(scratch: &Path, extra_toml: String, pg_tls: Option<String>) -> String {
    let audit = scratch.join("audit");
    Options {
        extra_toml,
        pg_tls,
        ..Options::default()
    }
    .to_toml(free_port(), free_port(), free_port(), &audit)
}

/// danxia exited with `want` (1: the policy does not load, 2: the
/// configuration is unusable) naming `file` and saying each of `wants`.
fn assert_refused(code: Option<i32>, want: i32, out: &str, file: &Path, wants: &[&str]) {
    assert_eq!(code, Some(want), "must not start:\n{out}");
    assert!(
        out.contains(&*file.to_string_lossy()),
        "names the file {}:\n{out}",
        file.display()
    );
    for w in wants {
        assert!(out.contains(w), "says {w:?}:\n{out}");
    }
}

#[test]
fn unsafe_policy_and_key_files_stop_startup_with_the_fix() {
    // A policy file every user can write.
    let (dir, file) = policy_dir(0o666);
    let (code, out, _) = run_config(&config_with(dir.path(), policy_toml(dir.path(), ""), None));
    assert_refused(
        code,
        1,
        &out,
        &file,
        &["writable by every user", "mode 0666", "chmod o-w"],
    );
    // `danxia check` says the same before a deploy.
    let check = run(Command::new(bin_path()).arg("check").arg(dir.path()));
    let text = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "check refuses it:\n{text}");
    assert!(text.contains("writable by every user"), "{text}");

    // A policy directory every user can write (without the sticky bit).
    let (dir, file) = policy_dir(0o644);
    chmod(dir.path(), 0o777);
    let (code, out, _) = run_config(&config_with(dir.path(), policy_toml(dir.path(), ""), None));
    assert_refused(code, 1, &out, &file, &["directory", "chmod o-w"]);
    chmod(dir.path(), 0o700);

    // A masking key other users can read.
    let (dir, _) = policy_dir(0o644);
    let key = dir.path().join("masking.key");
    fs::write(&key, "0123456789abcdef0123456789abcdef\n").expect("key");
    chmod(&key, 0o644);
    let extra = policy_toml(
        dir.path(),
        &format!(
            "masking_key_file = {}\n",
            toml_str(&key.display().to_string())
        ),
    );
    let (code, out, _) = run_config(&config_with(dir.path(), extra, None));
    assert_refused(code, 2, &out, &key, &["mode 0644", "chmod 600"]);
    // (A 0600 key starts: tests/tests/pg_masking.rs runs with one.)

    // A TLS private key other users can read.
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(pki_dir.path(), "perm");
    let server = pki.server("server", "localhost");
    chmod(&server.key, 0o644);
    let (code, out, _) = run_config(&config_with(
        pki_dir.path(),
        String::new(),
        Some(pki.listener_tls(&server, "")),
    ));
    assert_refused(
        code,
        2,
        &out,
        &server.key,
        &["TLS private key", "chmod 600"],
    );
}

#[test]
fn group_writable_policy_warns_and_a_world_writable_one_is_refused_on_reload() {
    let (dir, file) = policy_dir(0o664);
    let d = Danxia::start_with(Options {
        extra_toml: policy_toml(dir.path(), "mode = \"enforce\"\n"),
        ..Options::default()
    });
    let log = d.stderr();
    assert!(
        log.contains("group-writable") && log.contains("10-probe.toml"),
        "a warning names the group-writable policy file:\n{log}"
    );
    let (_, body) = d.http_get("/policy");
    let status: Value = serde_json::from_str(&body).expect("json");
    let v1 = status["version"].as_u64().expect("version");

    // Someone makes the file world-writable: the next reload is refused
    // with the reason, and the running policy stays.
    chmod(&file, 0o666);
    let (code, body) = d.http_post("/policy/reload");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("writable by every user") && body.contains("chmod o-w"),
        "{body}"
    );
    let (_, body) = d.http_get("/policy");
    let status: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["version"].as_u64(), Some(v1), "old policy kept");
    assert!(d.metric("danxia_policy_reloads_total", &[("result", "error")]) >= 1.0);

    // Fixed: the reload goes through.
    chmod(&file, 0o644);
    let (code, body) = d.http_post("/policy/reload");
    assert_eq!(code, 200, "{body}");
}
