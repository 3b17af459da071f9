//! Loading, routing and authorising against the shipped example pack and
//! small policies written in the tests; what `danxia check` reports for
//! broken files.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::error::Severity;

fn pack_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packs/api-example")
}

fn pack() -> ApiPolicy {
    ApiPolicy::load(&ApiLoadOptions {
        dir: pack_dir(),
        mask_key: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A policy from `files` (name, text) in a fresh directory.
fn policy_from(files: &[(&str, &str)]) -> (tempfile::TempDir, ApiLoadOptions) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let opts = ApiLoadOptions {
        dir: dir.path().to_path_buf(),
        mask_key: None,
    };
    (dir, opts)
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let (_d, opts) = policy_from(files);
    ApiPolicy::check(&opts)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

const ROUTES: &str = r#"
[[route]]
id = "persons.list"
method = "GET"
path = "/api/v1/persons"
query = ["page", "size"]
records = "$.items[*]"

[[route]]
id = "persons.get"
method = "GET"
path = "/api/v1/persons/{id}"
records = "$"
"#;

#[test]
fn example_pack_loads_without_warnings() {
    let p = pack();
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    assert_eq!(p.routes().len(), 5);
    assert_eq!(p.callers().count(), 3);
    let h = p.caller("dept-health").unwrap();
    assert_eq!(h.max_body, 64 * 1024);
    assert_eq!(h.quota.requests_per_minute, Some(600));
    assert_eq!(h.quota.records_per_day, Some(200_000));
    assert_eq!(h.night, NightPolicy::Deny);
    assert_eq!(h.anomaly, Some(8.0));
    assert_eq!(h.block_anomaly, Some(20.0));
    assert_eq!(
        h.night_hours.as_ref().map(|n| &*n.text),
        Some("00:00-06:00")
    );
    let a = p.caller("dept-audit").unwrap();
    assert_eq!(a.quota, Quota::default());
    assert_eq!(a.max_body, DEFAULT_MAX_BODY);
    // Same files, same version.
    assert_eq!(p.version(), pack().version());
}

#[test]
fn example_pack_routes() {
    let p = pack();
    let m = p.route("GET", "/api/v1/persons/42").unwrap();
    assert_eq!(&*m.route.id, "persons.get");
    assert_eq!(m.param("id"), Some("42"));
    assert_eq!(
        &*p.route("GET", "/api/v1/persons").unwrap().route.id,
        "persons.list"
    );
    assert_eq!(
        &*p.route("POST", "/api/v1/search").unwrap().route.id,
        "persons.search"
    );
    assert_eq!(
        &*p.route("GET", "/api/v1/export").unwrap().route.id,
        "persons.export"
    );
    assert_eq!(
        &*p.route("GET", "/api/v1/stats").unwrap().route.id,
        "stats.summary"
    );
    assert!(p.route("POST", "/api/v1/persons").is_none());
    assert!(p.route("GET", "/api/v1/persons/1/../2").is_none());
    assert!(p.route("GET", "/api/v2/persons").is_none());
    assert_eq!(p.settings().unknown_route, UnknownRoute::Deny);
}

fn refusal(a: Authorisation) -> (u16, &'static str, String) {
    match a {
        Authorisation::Refused {
            status,
            rule,
            detail,
            ..
        } => (status, rule, detail),
        Authorisation::Allowed { grant, .. } => panic!("allowed by {}", grant.id),
    }
}

#[test]
fn authorise_refusals() {
    let p = pack();
    let list = p.route("GET", "/api/v1/persons").unwrap();
    let get = p.route("GET", "/api/v1/persons/7").unwrap();
    let stats = p.route("GET", "/api/v1/stats").unwrap();
    let noon = 12 * 60;

    let (s, r, _) = refusal(p.authorise("nobody", &list, &[], None, noon));
    assert_eq!((s, r), (403, rules::CALLER_UNKNOWN));

    let (s, r, d) = refusal(p.authorise("dept-stats", &get, &[], None, noon));
    assert_eq!((s, r), (403, rules::ROUTE_NOT_GRANTED));
    assert!(d.contains("persons.get"), "{d}");
    let (s, r, _) = refusal(p.authorise("dept-health", &stats, &[], None, noon));
    assert_eq!((s, r), (403, rules::ROUTE_NOT_GRANTED));

    let (s, r, d) = refusal(p.authorise("dept-health", &list, &["page", "sort"], None, noon));
    assert_eq!((s, r), (400, rules::QUERY_NOT_ALLOWED));
    assert!(
        d.contains("`sort`") && d.contains("page, size, district"),
        "{d}"
    );

    let (s, r, _) = refusal(p.authorise("dept-health", &list, &[], Some(64 * 1024 + 1), noon));
    assert_eq!((s, r), (413, rules::BODY_TOO_LARGE));
    assert!(p
        .authorise("dept-health", &list, &[], Some(64 * 1024), noon)
        .is_allowed());
    // dept-audit has the settings' 1 MiB.
    assert!(p
        .authorise("dept-audit", &list, &[], Some(1 << 20), noon)
        .is_allowed());
    let (s, r, _) = refusal(p.authorise("dept-audit", &list, &[], Some((1 << 20) + 1), noon));
    assert_eq!((s, r), (413, rules::BODY_TOO_LARGE));

    let (s, r, d) = refusal(p.authorise("dept-health", &list, &["page"], None, 3 * 60));
    assert_eq!((s, r), (403, rules::NIGHT));
    assert!(d.contains("00:00-06:00"), "{d}");
    match p.authorise("dept-stats", &list, &["district"], None, 3 * 60) {
        Authorisation::Allowed { night, grant } => {
            assert!(night);
            assert_eq!(&*grant.id, "dept-stats.grant[1]");
        }
        other => panic!("{other:?}"),
    }
    match p.authorise("dept-audit", &get, &[], None, 3 * 60) {
        Authorisation::Allowed { night, grant } => {
            assert!(!night);
            assert!(!grant.restricts());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn example_pack_field_scopes() {
    let p = pack();
    let list = p.route("GET", "/api/v1/persons").unwrap();
    let g = p.grant("dept-health", &list).unwrap().clone();
    assert!(g.restricts());
    assert_eq!(&*g.id, "dept-health.grant[0]");
    let tags: Vec<&str> = g.mask_tags().iter().map(|(k, _)| k.tag()).collect();
    assert_eq!(tags, ["pii.id_number", "pii.phone"]);
    let f = &g.fields;
    let (a, items) = f.member(f.root(), "items");
    assert_eq!(a, FieldAction::KeepIfContainer);
    let rec = f.element(items, 0);
    assert!(f.node(rec).is_record);
    for (key, action, mask) in [
        ("name", FieldAction::Keep, None),
        ("id_number", FieldAction::Keep, Some("keep(6,4)")),
        ("phone", FieldAction::Keep, Some("keep(3,4)")),
        ("address", FieldAction::Remove, None),
        ("id", FieldAction::Remove, None),
    ] {
        let (got, s) = f.member(rec, key);
        assert_eq!(got, action, "{key}");
        if got != FieldAction::Remove {
            assert_eq!(f.node(s).mask.map(|m| &*m.spec), mask, "{key}");
        }
    }
    assert_eq!(f.member(f.root(), "total").0, FieldAction::Keep);

    // persons.get: the root is the record.
    let get = p.route("GET", "/api/v1/persons/1").unwrap();
    let g = p.grant("dept-health", &get).unwrap();
    assert!(g.fields.root_is_record(false));
    // export: elements of the top-level array.
    let export = p.route("GET", "/api/v1/export").unwrap();
    let g = p.grant("dept-health", &export).unwrap();
    let e = g.fields.element(g.fields.root(), 0);
    assert!(g.fields.node(e).is_record);
    assert!(!g.fields.root_is_record(true));
    // stats: nothing counted.
    let stats = p.route("GET", "/api/v1/stats").unwrap();
    let g = p.grant("dept-stats", &stats).unwrap();
    assert!(!g.fields.counts_records());
    assert!(!g.restricts());
    // dept-stats sees only districts.
    let g = p.grant("dept-stats", &list).unwrap();
    let (_, items) = g.fields.member(g.fields.root(), "items");
    let rec = g.fields.element(items, 0);
    assert_eq!(g.fields.member(rec, "district").0, FieldAction::Keep);
    assert_eq!(g.fields.member(rec, "name").0, FieldAction::Remove);
}

#[test]
fn explain_names_route_and_grant() {
    let p = pack();
    let lines = p.explain(
        "dept-health",
        "GET",
        "/api/v1/persons",
        &["page"],
        None,
        600,
    );
    let text = lines.join("\n");
    assert!(text.contains("route `persons.list`"), "{text}");
    assert!(text.contains("allowed by dept-health.grant[0]"), "{text}");
    assert!(text.contains("keep(6,4)"), "{text}");
    let lines = p.explain("dept-health", "GET", "/nowhere", &[], None, 600);
    assert!(lines[0].contains("api.route-unknown"), "{lines:?}");
}

#[test]
fn most_specific_route_and_ambiguity() {
    let ok = format!(
        "{ROUTES}\n[[route]]\nid = \"persons.export\"\nmethod = \"GET\"\npath = \"/api/v1/persons/export\"\n"
    );
    let (_d, opts) = policy_from(&[("10-routes.toml", &ok)]);
    let p = ApiPolicy::load(&opts).unwrap();
    assert_eq!(
        &*p.route("GET", "/api/v1/persons/export").unwrap().route.id,
        "persons.export"
    );
    assert_eq!(
        &*p.route("GET", "/api/v1/persons/x").unwrap().route.id,
        "persons.get"
    );

    let bad = format!(
        "{ROUTES}\n[[route]]\nid = \"persons.by-name\"\nmethod = \"GET\"\npath = \"/api/v1/persons/{{name}}\"\n"
    );
    let e = errors(&[("10-routes.toml", &bad)]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("ambiguous routes")
            && e[0].contains("persons.by-name")
            && e[0].contains("persons.get"),
        "{e:?}"
    );
}

#[test]
fn diagnostics_have_lines_and_suggestions() {
    let callers = r#"
[[caller]]
id = "c1"
nigth = "deny"

  [[caller.grant]]
  routes = ["persons.lst"]
  fields = ["$.items[0].name"]
  mask = { "$.x" = "kep(1,1)" }
  mask_tags = { "pii.phon" = "keep(3,4)" }
  query = ["pgae"]
"#;
    let e = errors(&[("10-routes.toml", ROUTES), ("20-callers.toml", callers)]);
    let all = e.join("\n");
    for want in [
        "20-callers.toml:4: unknown key `nigth`, did you mean `night`?",
        "20-callers.toml:7: grant `c1.grant[0]`: `persons.lst` matches no route id, did you mean `persons.list`?",
        "20-callers.toml:8: grant `c1.grant[0]`: fields: bad JSON path `$.items[0].name`: array indexes",
        "20-callers.toml:9: grant `c1.grant[0]`: mask `$.x`:",
        "20-callers.toml:10: grant `c1.grant[0]`: mask_tags: unknown detectable tag `pii.phon`, did you mean `pii.phone`?",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    let e = errors(&[
        (
            "00-settings.toml",
            "[settings]\nunknown_route = \"alow\"\nmax_body = \"1 TB\"\nnight = \"22:00\"\n",
        ),
        (
            "10-routes.toml",
            "[[route]]\nid = \"Bad Id\"\nmethod = \"get\"\npath = \"api/x\"\nrecords = \"items\"\n",
        ),
    ]);
    let all = e.join("\n");
    for want in [
        "00-settings.toml:2: unknown unknown_route value `alow`, did you mean `allow`?",
        "00-settings.toml:3: `max_body` must be a size",
        "00-settings.toml:4: `night` `22:00`: expected quiet hours as HH:MM-HH:MM",
        "10-routes.toml:2: route id `Bad Id` must be lower-case",
        "10-routes.toml:3: route `Bad Id`: unknown method `get` (write `GET`",
        "10-routes.toml:4: route `Bad Id`: path `api/x` must start with `/`",
        "10-routes.toml:5: route `Bad Id`: records: bad JSON path `items`",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    assert!(errors(&[])
        .iter()
        .any(|e| e.contains("no API policy files")));
}

#[test]
fn grants_query_subsets_and_first_grant_wins() {
    let callers = r#"
[[caller]]
id = "c1"
  [[caller.grant]]
  routes = ["persons.list"]
  query = ["page"]
  fields = ["$.items[*].name"]
  outside = "redact"
  [[caller.grant]]
  routes = ["persons.*"]
"#;
    let (_d, opts) = policy_from(&[("10-routes.toml", ROUTES), ("20-callers.toml", callers)]);
    let p = ApiPolicy::load(&opts).unwrap();
    let list = p.route("GET", "/api/v1/persons").unwrap();
    let (s, r, d) = refusal(p.authorise("c1", &list, &["size"], None, 0));
    assert_eq!((s, r), (400, rules::QUERY_NOT_ALLOWED));
    assert!(
        d.contains("not granted") && d.contains("allowed: page"),
        "{d}"
    );
    let g = p.grant("c1", &list).unwrap();
    assert_eq!(&*g.id, "c1.grant[0]");
    assert!(matches!(&g.outside, Outside::Mask(m) if &*m.spec == "redact"));
    let (a, items) = g.fields.member(g.fields.root(), "items");
    assert_eq!(a, FieldAction::Keep);
    let rec = g.fields.element(items, 0);
    let (_, addr) = g.fields.member(rec, "address");
    assert!(g.fields.node(addr).outside);
    let get = p.route("GET", "/api/v1/persons/1").unwrap();
    assert_eq!(&*p.grant("c1", &get).unwrap().id, "c1.grant[1]");
    // No quiet hours: night = alert by default, never triggered.
    assert!(matches!(
        p.authorise("c1", &get, &[], None, 120),
        Authorisation::Allowed { night: false, .. }
    ));
}

#[test]
fn hash_masks_need_the_key_but_check_does_not() {
    let callers = r#"
[[caller]]
id = "c1"
  [[caller.grant]]
  routes = ["persons.get"]
  mask = { "$.id_number" = "hash" }
"#;
    let (_d, mut opts) = policy_from(&[("10-routes.toml", ROUTES), ("20-callers.toml", callers)]);
    assert!(ApiPolicy::load(&opts).is_err());
    assert!(ApiPolicy::check(&opts)
        .iter()
        .all(|d| d.severity != Severity::Error));
    opts.mask_key = Some(Arc::from(&b"k"[..]));
    assert!(ApiPolicy::load(&opts).is_ok());
}

#[test]
fn state_cap_is_a_load_error_naming_the_grant() {
    let callers = r#"
[[caller]]
id = "c1"
  [[caller.grant]]
  routes = ["persons.get"]
  fields = ["$..a.*.*.*.*.*.*.*.*.*.*.*.*.*.*"]
"#;
    let e = errors(&[("10-routes.toml", ROUTES), ("20-callers.toml", callers)]);
    assert!(
        e.iter()
            .any(|e| e.contains("grant `c1.grant[0]` on route `persons.get`")
                && e.contains("more than 10000")),
        "{e:?}"
    );
}

#[test]
fn version_changes_with_content() {
    let (_d1, o1) = policy_from(&[("10-routes.toml", ROUTES)]);
    let (_d2, o2) = policy_from(&[("10-routes.toml", &format!("{ROUTES}\n# changed\n"))]);
    let v1 = ApiPolicy::load(&o1).unwrap().version();
    let v2 = ApiPolicy::load(&o2).unwrap().version();
    assert_ne!(v1, v2);
    assert_eq!(v1, ApiPolicy::load(&o1).unwrap().version());
}

#[test]
fn api_policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ApiPolicy>();
    assert_send_sync::<Grant>();
}
