//! The API policy commands as the security team runs them: `danxia api
//! import` (OpenAPI → route skeleton), `danxia check --api`, `danxia api
//! explain`, and the hint `danxia check` gives on an API policy directory.

use std::process::{Command, Output};

use danxia_e2e::*;

fn danxia(args: &[&str]) -> Output {
    Command::new(bin_path())
        .args(args)
        .output()
        .expect("run danxia")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn import_openapi_then_check_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = workspace_root().join("policies/src/api/testdata/citizens.openapi.yaml");
    let out = dir.path().join("10-routes.toml");
    let o = danxia(&[
        "api",
        "import",
        spec.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let skeleton = std::fs::read_to_string(&out).expect("skeleton written");
    assert!(skeleton.matches("[[route]]").count() >= 3, "{skeleton}");
    assert!(
        skeleton.contains("path = \"/api/v1/persons/{id}\""),
        "{skeleton}"
    );
    // The example caller is commented, with the response fields and the
    // personal-data ones flagged.
    assert!(skeleton.contains("# [[caller]]"), "{skeleton}");
    assert!(skeleton.contains("pii.id_number"), "{skeleton}");
    let o = danxia(&["check", "--api", dir.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("OK"), "{}", text(&o));
    // A second import does not overwrite the trimmed file.
    let o = danxia(&[
        "api",
        "import",
        spec.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--force"), "{}", text(&o));
    // Uncommented ("# " off every line from the example caller on; "## "
    // explanations stay comments), the example caller loads too.
    let start = skeleton.find("# [[caller]]").expect("example caller");
    let (head, tail) = skeleton.split_at(start);
    let tail: Vec<&str> = tail
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .or_else(|| l.strip_prefix('#'))
                .unwrap_or(l)
        })
        .collect();
    let uncommented = format!("{head}{}\n", tail.join("\n"));
    std::fs::write(&out, uncommented).expect("write");
    let o = danxia(&["check", "--api", dir.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn explain_names_the_deciding_rule() {
    let pack = workspace_root().join("policies/packs/api-example");
    let pack = pack.to_str().expect("utf-8 path");
    // Noon: no quiet hours.
    let o = danxia(&[
        "api",
        "explain",
        "--policy",
        pack,
        "--caller",
        "dept-health",
        "--minute",
        "720",
        "GET",
        "/api/v1/persons?page=1&size=5",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("persons.list"), "{}", text(&o));
    assert!(text(&o).contains("dept-health.grant[0]"), "{}", text(&o));
    let o = danxia(&[
        "api",
        "explain",
        "--policy",
        pack,
        "--caller",
        "dept-stats",
        "--minute",
        "720",
        "GET",
        "/api/v1/persons/3",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("api.route-not-granted"), "{}", text(&o));
    // 02:00: dept-health's quiet hours refuse.
    let o = danxia(&[
        "api",
        "explain",
        "--policy",
        pack,
        "--caller",
        "dept-health",
        "--minute",
        "120",
        "GET",
        "/api/v1/persons/3",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("api.night"), "{}", text(&o));
    // The SQL checker on an API directory points to --api.
    let o = danxia(&["check", pack]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("check --api"), "{}", text(&o));
}
