//! Compiling an API scope directory: reads every `*.toml` file in name
//! order, validates `[settings]`, `[[route]]` and `[[caller]]` (with
//! `[[caller.grant]]`), builds the route trie and, for every (caller,
//! route) pair a grant covers, the deciding [`Grant`] with its field-scope
//! automaton. Owns the meaning of every key of the API scope language;
//! reports every problem it finds (file and line, unknown keys with a
//! suggestion) and never guesses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use danxia_detectors::mask::Strategy;
use danxia_detectors::pii::Kind;
use toml_edit::{Item, TableLike, Value};

use super::fields::{FieldScope, Outside, Records, ScopeSpec, MAX_SCOPE_STATES};
use super::path::JsonPath;
use super::route::{methods_overlap, Router, Template};
use super::{
    ApiLoadOptions, ApiSettings, Caller, Grant, GrantSpec, NightHours, NightPolicy, Quota, Route,
    UnknownRoute,
};
use crate::error::{Diagnostic, Severity};
use crate::glob::Glob;
use crate::lang::{parse_document, suggestion, unknown, Located, Reader, Source};
use crate::mask::MaskRef;

const TOP_KEYS: [&str; 3] = ["settings", "route", "caller"];
const SETTINGS_KEYS: [&str; 4] = ["unknown_route", "outside", "max_body", "night"];
const ROUTE_KEYS: [&str; 7] = [
    "id",
    "method",
    "path",
    "query",
    "records",
    "sensitive",
    "description",
];
const CALLER_KEYS: [&str; 9] = [
    "id",
    "name",
    "max_body",
    "quota",
    "night",
    "night_hours",
    "anomaly",
    "block_anomaly",
    "grant",
];
const QUOTA_KEYS: [&str; 5] = [
    "requests_per_second",
    "requests_per_minute",
    "requests_per_day",
    "records_per_minute",
    "records_per_day",
];
const GRANT_KEYS: [&str; 7] = [
    "routes",
    "query",
    "fields",
    "outside",
    "mask",
    "mask_tags",
    "description",
];
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];
/// Largest body limit accepted (a body limit is there to be a limit).
const MAX_BODY_LIMIT: u64 = 1 << 40;
/// Most entries in one grant's `mask`, `mask_tags` or `fields`.
const MAX_GRANT_ENTRIES: usize = 1024;
/// Largest quota value.
const MAX_QUOTA: i64 = 1_000_000_000_000;

/// What a directory compiles to.
pub(crate) struct Compiled {
    pub(crate) version: u64,
    pub(crate) settings: ApiSettings,
    pub(crate) routes: Vec<Route>,
    pub(crate) router: Router,
    pub(crate) callers: Vec<Caller>,
    pub(crate) grants: Vec<Vec<Option<Arc<Grant>>>>,
}

fn location(file: &Path, line: Option<usize>) -> Arc<str> {
    match line {
        Some(l) => format!("{}:{l}", file.display()).into(),
        None => file.display().to_string().into(),
    }
}

pub(crate) fn compile(opts: &ApiLoadOptions) -> (Option<Compiled>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let files = crate::compile::read_dir(&opts.dir, &[], "API policy", &mut diags);
    // The version is a content hash (FNV-1a), stable across runs.
    let mut version = danxia_detectors::ValueDigest::default();
    let mut docs = Vec::new();
    for (path, text) in &files {
        version.push(path.file_name().map_or(&[][..], |n| n.as_encoded_bytes()));
        version.push(text.as_bytes());
        let src = Source::new(path, text);
        if let Some(doc) = parse_document(&src, text, &mut diags) {
            docs.push((src, doc));
        }
    }
    let key = opts.mask_key.as_ref();

    // Pass 1: settings and routes.
    let mut settings = ApiSettings::default();
    let mut settings_at: Option<Arc<str>> = None;
    let mut routes: Vec<Route> = Vec::new();
    for (src, doc) in &docs {
        let mut r = Reader::new(src, &mut diags);
        let root = doc.as_table();
        r.unknown_keys(root, &TOP_KEYS);
        if let Some(item) = root.get("settings") {
            let line = r.key_line(root, "settings");
            match (item.as_table_like(), &settings_at) {
                (None, _) => r.error(line, "`settings` must be a table: write `[settings]`"),
                (Some(_), Some(first)) => r.error(
                    line,
                    format!("a second [settings] table; only one file may have it (the first is at {first})"),
                ),
                (Some(t), None) => {
                    settings_at = Some(location(&src.path, line));
                    read_settings(&mut r, t, &mut settings, key);
                }
            }
        }
        for t in tables(&mut r, root, "route", "[[route]]") {
            if let Some(route) = read_route(&mut r, t, &routes) {
                routes.push(route);
            }
        }
    }
    check_ambiguous(&routes, &mut diags);

    // Pass 2: callers, which use settings and routes from any file.
    let mut callers: Vec<Caller> = Vec::new();
    for (src, doc) in &docs {
        let mut r = Reader::new(src, &mut diags);
        let root = doc.as_table();
        for t in tables(&mut r, root, "caller", "[[caller]]") {
            if let Some(c) = read_caller(&mut r, t, &settings, &routes, &callers, key) {
                callers.push(c);
            }
        }
    }
    if routes.is_empty() && !files.is_empty() {
        diags.push(Diagnostic {
            severity: Severity::Warning,
            file: Some(opts.dir.clone()),
            line: None,
            rule_id: None,
            message: "no [[route]]: every request is an unknown route".into(),
        });
    }

    // Pass 3: the deciding grant of every (caller, route) pair.
    let mut grants = Vec::with_capacity(callers.len());
    for c in &callers {
        let file = Some(PathBuf::from(
            c.location.rsplit_once(':').map_or(&*c.location, |(f, _)| f),
        ));
        let mut row: Vec<Option<Arc<Grant>>> = vec![None; routes.len()];
        let mut used = vec![false; c.grants.len()];
        for (ri, route) in routes.iter().enumerate() {
            let Some(gi) = c
                .grants
                .iter()
                .position(|g| g.routes.iter().any(|p| p.matches(&route.id)))
            else {
                continue;
            };
            used[gi] = true;
            let g = &c.grants[gi];
            let outside = g
                .outside
                .clone()
                .unwrap_or_else(|| settings.outside.clone());
            let spec = ScopeSpec {
                fields: g.fields.as_deref(),
                masks: &g.masks,
                records: &route.records_c,
                outside: &outside,
            };
            match FieldScope::build(&spec, MAX_SCOPE_STATES) {
                Ok(scope) => {
                    row[ri] = Some(Arc::new(Grant {
                        id: g.id.clone(),
                        caller: c.id.clone(),
                        route: route.id.clone(),
                        fields: scope,
                        field_paths: g
                            .fields
                            .as_ref()
                            .map(|f| f.iter().map(|p| Arc::from(p.to_string())).collect()),
                        masks: g
                            .masks
                            .iter()
                            .map(|(p, m)| (Arc::from(p.to_string()), m.clone()))
                            .collect(),
                        query: g.query.clone(),
                        outside,
                        mask_tags: g.mask_tags.clone(),
                    }))
                }
                Err(e) => diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: file.clone(),
                    line: g.line,
                    rule_id: None,
                    message: format!("grant `{}` on route `{}`: {e}", g.id, route.id),
                }),
            }
        }
        for (gi, g) in c.grants.iter().enumerate() {
            if !used[gi] && !g.routes.is_empty() {
                diags.push(Diagnostic {
                    severity: Severity::Warning,
                    file: file.clone(),
                    line: g.line,
                    rule_id: None,
                    message: format!(
                        "grant `{}` never decides: an earlier grant of `{}` covers every route it names",
                        g.id, c.id
                    ),
                });
            }
        }
        grants.push(row);
    }

    let refs: Vec<(&str, &Template)> = routes.iter().map(|r| (&*r.method, &r.template)).collect();
    let router = Router::new(&refs);
    let compiled = Compiled {
        version: version.finish().unwrap_or(0),
        settings,
        routes,
        router,
        callers,
        grants,
    };
    (Some(compiled), diags)
}

/// The tables of an array-of-tables key (`[[route]]`), or of an array of
/// inline tables.
fn tables<'d>(
    r: &mut Reader<'_>,
    parent: &'d dyn TableLike,
    key: &str,
    how: &str,
) -> Vec<&'d dyn TableLike> {
    match parent.get(key) {
        None => Vec::new(),
        Some(Item::ArrayOfTables(a)) => a.iter().map(|t| t as &dyn TableLike).collect(),
        Some(Item::Value(Value::Array(a))) if a.iter().all(|v| v.as_inline_table().is_some()) => a
            .iter()
            .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
            .collect(),
        Some(_) => {
            let line = r.key_line(parent, key);
            r.error(line, format!("`{key}` must be written as `{how}` tables"));
            Vec::new()
        }
    }
}

/// Line of a table (its first key).
fn table_line(r: &Reader<'_>, t: &dyn TableLike) -> Option<usize> {
    t.iter().next().and_then(|(k, _)| r.key_line(t, k))
}

/// `"1MiB"`, `"64KiB"`, `"512"`, `"10MB"` in bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn read_size(r: &mut Reader<'_>, t: &dyn TableLike, key: &str) -> Option<u64> {
    let item = t.get(key)?;
    let line = r.key_line(t, key);
    let v = match item.as_value() {
        Some(Value::Integer(i)) => u64::try_from(*i.value()).ok(),
        Some(Value::String(s)) => parse_size(s.value()),
        _ => None,
    };
    match v {
        Some(n) if (1..=MAX_BODY_LIMIT).contains(&n) => Some(n),
        _ => {
            r.error(
                line,
                format!("`{key}` must be a size in bytes (an integer, or a string with B, KiB, MiB, GiB, KB, MB or GB), e.g. \"64KiB\""),
            );
            None
        }
    }
}

fn read_night_hours(r: &mut Reader<'_>, v: &Located, key: &str) -> Option<NightHours> {
    let bad = |r: &mut Reader<'_>| {
        r.error(
            v.line,
            format!(
                "`{key}` `{}`: expected quiet hours as HH:MM-HH:MM local time, e.g. \"00:00-06:00\" (wraps past midnight when the end is earlier)",
                v.text
            ),
        )
    };
    let Some((a, b)) = v.text.trim().split_once('-') else {
        bad(r);
        return None;
    };
    let clock = |s: &str| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        (h <= 24 && m <= 59 && (h < 24 || m == 0)).then_some(h * 60 + m)
    };
    match (clock(a), clock(b)) {
        (Some(start), Some(end)) if start != end => Some(NightHours {
            text: v.text.trim().into(),
            start,
            end,
        }),
        _ => {
            bad(r);
            None
        }
    }
}

fn read_outside(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
    origin: &str,
    key: Option<&Arc<[u8]>>,
) -> Option<Outside> {
    let v = r.string(t, "outside")?;
    if v.text.trim() == "remove" {
        return Some(Outside::Remove);
    }
    match Strategy::parse(&v.text, key) {
        Ok(s) => Some(Outside::Mask(MaskRef {
            rule_id: Arc::from(origin),
            spec: Arc::from(v.text.trim()),
            strategy: Arc::new(s),
        })),
        Err(e) => {
            r.error(
                v.line,
                format!(
                    "`outside` must be \"remove\" or a masking strategy (e.g. \"redact\"): {e}"
                ),
            );
            None
        }
    }
}

fn read_settings(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
    s: &mut ApiSettings,
    key: Option<&Arc<[u8]>>,
) {
    r.unknown_keys(t, &SETTINGS_KEYS);
    if let Some(v) = r.string(t, "unknown_route") {
        match v.text.as_str() {
            "deny" => s.unknown_route = UnknownRoute::Deny,
            "allow" => s.unknown_route = UnknownRoute::Allow,
            other => r.error(
                v.line,
                format!(
                    "{}; expected \"deny\" (404) or \"allow\" (forwarded unscoped, audited)",
                    unknown("unknown_route value", other, &["deny", "allow"])
                ),
            ),
        }
    }
    if let Some(o) = read_outside(r, t, "settings.outside", key) {
        s.outside = o;
    }
    if let Some(n) = read_size(r, t, "max_body") {
        s.max_body = n;
    }
    if let Some(v) = r.string(t, "night") {
        s.night = read_night_hours(r, &v, "night");
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn read_route(r: &mut Reader<'_>, t: &dyn TableLike, earlier: &[Route]) -> Option<Route> {
    let before = r.diags.len();
    let tline = table_line(r, t);
    r.unknown_keys(t, &ROUTE_KEYS);
    let Some(id) = r.string(t, "id") else {
        if t.get("id").is_none() {
            r.error(
                tline,
                "[[route]] without `id`; give it a unique id, e.g. id = \"persons.list\"",
            );
        }
        return None;
    };
    if !valid_id(&id.text) {
        r.error(
            id.line,
            format!("route id `{}` must be lower-case letters, digits, `.`, `_` and `-`, e.g. \"persons.list\"", id.text),
        );
    }
    if let Some(first) = earlier.iter().find(|x| *x.id == *id.text) {
        r.error(
            id.line,
            format!(
                "route id `{}` is used twice (first at {})",
                id.text, first.location
            ),
        );
    }
    let ctx = format!("route `{}`", id.text);
    let method = match r.string(t, "method") {
        None if t.get("method").is_none() => {
            r.error(
                id.line,
                format!("{ctx}: missing `method`, e.g. method = \"GET\" (or \"*\" for any)"),
            );
            None
        }
        None => None,
        Some(m) if m.text == "*" || METHODS.contains(&m.text.as_str()) => Some(m.text),
        Some(m) => {
            let upper = m.text.to_ascii_uppercase();
            let hint = if METHODS.contains(&upper.as_str()) {
                format!(" (write `{upper}`: methods are case-sensitive)")
            } else {
                suggestion(&upper, METHODS).to_string()
            };
            r.error(
                m.line,
                format!("{ctx}: unknown method `{}`{hint}; expected GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or \"*\"", m.text),
            );
            None
        }
    };
    let template = match r.string(t, "path") {
        None if t.get("path").is_none() => {
            r.error(
                id.line,
                format!("{ctx}: missing `path`, e.g. path = \"/api/v1/persons/{{id}}\""),
            );
            None
        }
        None => None,
        Some(p) => match Template::parse(&p.text) {
            Ok(tpl) => Some((p.text, tpl)),
            Err(e) => {
                r.error(p.line, format!("{ctx}: {e}"));
                None
            }
        },
    };
    let query: Vec<Arc<str>> = match t.get("query") {
        Some(Item::Value(Value::Array(a))) if a.is_empty() => Vec::new(),
        _ => r
            .string_list(t, "query")
            .unwrap_or_default()
            .into_iter()
            .map(|q| Arc::from(q.text))
            .collect(),
    };
    if let Some(q) = query.iter().find(|q| q.is_empty()) {
        let line = r.key_line(t, "query");
        r.error(line, format!("{ctx}: empty query parameter name `{q}`"));
    }
    let (records, records_c) = match r.string(t, "records") {
        None => (None, Records::Default),
        Some(v) if v.text.trim() == "none" => (Some(Arc::from("none")), Records::None),
        Some(v) => match JsonPath::parse(&v.text) {
            Ok(p) => (Some(Arc::from(p.to_string())), Records::Path(p)),
            Err(e) => {
                r.error(v.line, format!("{ctx}: records: {e} (or \"none\")"));
                (None, Records::Default)
            }
        },
    };
    let sensitive = match t.get("sensitive") {
        None => false,
        Some(i) => match i.as_value().and_then(Value::as_bool) {
            Some(b) => b,
            None => {
                let line = r.key_line(t, "sensitive");
                r.error(line, format!("{ctx}: `sensitive` must be true or false"));
                false
            }
        },
    };
    let description = r.string(t, "description").map(|d| Arc::from(d.text));
    let (method, (path, template)) = (method?, template?);
    (r.diags.len() == before).then(|| Route {
        id: id.text.into(),
        method: method.into(),
        path: path.into(),
        query,
        records,
        sensitive,
        description,
        template,
        records_c,
        location: location(&r.src.path, id.line),
    })
}

/// Two routes some request matches with the same rank: which one decides
/// would depend on file order, so neither is accepted.
fn check_ambiguous(routes: &[Route], diags: &mut Vec<Diagnostic>) {
    for (j, b) in routes.iter().enumerate() {
        for a in &routes[..j] {
            if methods_overlap(&a.method, &b.method)
                && a.template.overlaps(&b.template)
                && a.template.literal_count() == b.template.literal_count()
                && (*a.method == *"*") == (*b.method == *"*")
            {
                let (file, line) = match b.location.rsplit_once(':') {
                    Some((f, l)) => (PathBuf::from(f), l.parse().ok()),
                    None => (PathBuf::from(&*b.location), None),
                };
                diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: Some(file),
                    line,
                    rule_id: None,
                    message: format!(
                        "ambiguous routes: `{}` ({} {}) and `{}` ({} {}, {}) match the same requests with as many literal segments; make one more specific or merge them",
                        b.id, b.method, b.path, a.id, a.method, a.path, a.location
                    ),
                });
            }
        }
    }
}

fn read_count(r: &mut Reader<'_>, t: &dyn TableLike, key: &str, what: &str) -> Option<u64> {
    let (n, line) = r.integer(t, key)?;
    if (1..=MAX_QUOTA).contains(&n) {
        Some(n as u64)
    } else {
        r.error(
            line,
            format!("{what}.{key} must be a count from 1 to {MAX_QUOTA}"),
        );
        None
    }
}

fn read_score(r: &mut Reader<'_>, t: &dyn TableLike, key: &str) -> Option<f64> {
    let item = t.get(key)?;
    let line = r.key_line(t, key);
    let v = item
        .as_value()
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
    match v {
        Some(x) if x > 0.0 && x <= 50.0 => Some(x),
        _ => {
            r.error(
                line,
                format!("`{key}` must be a score above 0 and at most 50, e.g. 8.0 (see docs/behaviour.md)"),
            );
            None
        }
    }
}

fn read_caller(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
    settings: &ApiSettings,
    routes: &[Route],
    earlier: &[Caller],
    key: Option<&Arc<[u8]>>,
) -> Option<Caller> {
    let before = r.diags.len();
    let tline = table_line(r, t);
    r.unknown_keys(t, &CALLER_KEYS);
    let Some(id) = r.string(t, "id") else {
        if t.get("id").is_none() {
            r.error(tline, "[[caller]] without `id`; give the id authentication yields, e.g. id = \"dept-health\"");
        }
        return None;
    };
    if id.text.trim().is_empty() || id.text.len() > 256 || id.text.chars().any(char::is_control) {
        r.error(id.line, format!("caller id `{}` must be non-empty text without control characters, at most 256 bytes", id.text));
    }
    if let Some(first) = earlier.iter().find(|x| *x.id == *id.text) {
        r.error(
            id.line,
            format!(
                "caller `{}` is defined twice (first at {})",
                id.text, first.location
            ),
        );
    }
    let ctx = format!("caller `{}`", id.text);
    let name = r.string(t, "name").map(|n| Arc::from(n.text));
    let max_body = read_size(r, t, "max_body").unwrap_or(settings.max_body);
    let mut quota = Quota::default();
    if let Some(item) = t.get("quota") {
        match item.as_table_like() {
            Some(q) => {
                r.unknown_keys(q, &QUOTA_KEYS);
                quota.requests_per_second = read_count(r, q, "requests_per_second", "quota");
                quota.requests_per_minute = read_count(r, q, "requests_per_minute", "quota");
                quota.requests_per_day = read_count(r, q, "requests_per_day", "quota");
                quota.records_per_minute = read_count(r, q, "records_per_minute", "quota");
                quota.records_per_day = read_count(r, q, "records_per_day", "quota");
            }
            None => {
                let line = r.key_line(t, "quota");
                r.error(line, format!("{ctx}: `quota` must be a table, e.g. quota = {{ requests_per_minute = 600 }}"));
            }
        }
    }
    let night_hours = match r.string(t, "night_hours") {
        Some(v) => read_night_hours(r, &v, "night_hours"),
        None => settings.night.clone(),
    };
    let night = match r.string(t, "night") {
        None => NightPolicy::Alert,
        Some(v) => {
            let p = match v.text.as_str() {
                "deny" => NightPolicy::Deny,
                "alert" => NightPolicy::Alert,
                "allow" => NightPolicy::Allow,
                other => {
                    r.error(
                        v.line,
                        format!(
                            "{ctx}: {}",
                            unknown("night value", other, &["deny", "alert", "allow"])
                        ),
                    );
                    NightPolicy::Alert
                }
            };
            if p != NightPolicy::Allow && night_hours.is_none() {
                r.push(
                    Severity::Warning,
                    v.line,
                    format!("{ctx}: night = \"{}\" has no effect: neither settings.night nor the caller's night_hours sets quiet hours", v.text),
                );
            }
            p
        }
    };
    let anomaly = read_score(r, t, "anomaly");
    let block_anomaly = read_score(r, t, "block_anomaly");
    if let (Some(a), Some(b)) = (anomaly, block_anomaly) {
        if b < a {
            let line = r.key_line(t, "block_anomaly");
            r.error(line, format!("{ctx}: block_anomaly ({b}) is below anomaly ({a}); refusing must take at least the alerting score"));
        }
    }
    let mut grants = Vec::new();
    for (i, g) in tables(r, t, "grant", "[[caller.grant]]")
        .into_iter()
        .enumerate()
    {
        let gid: Arc<str> = format!("{}.grant[{i}]", id.text).into();
        if let Some(g) = read_grant(r, g, gid, routes, key) {
            grants.push(g);
        }
    }
    if t.get("grant").is_none() {
        r.push(
            Severity::Warning,
            id.line,
            format!(
                "{ctx} has no [[caller.grant]]: every request from it is refused ({})",
                super::rules::ROUTE_NOT_GRANTED
            ),
        );
    }
    (r.diags.len() == before
        || r.diags[before..]
            .iter()
            .all(|d| d.severity == Severity::Warning))
    .then(|| Caller {
        id: id.text.into(),
        name,
        quota,
        night,
        night_hours,
        anomaly,
        block_anomaly,
        max_body,
        grants,
        location: location(&r.src.path, id.line),
    })
}

fn read_paths(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
    key: &str,
    ctx: &str,
) -> Option<Vec<JsonPath>> {
    let list = r.string_list(t, key)?;
    if list.len() > MAX_GRANT_ENTRIES {
        let line = r.key_line(t, key);
        r.error(
            line,
            format!("{ctx}: `{key}` has more than {MAX_GRANT_ENTRIES} entries"),
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for v in list {
        match JsonPath::parse(&v.text) {
            Ok(p) => out.push(p),
            Err(e) => {
                r.error(v.line, format!("{ctx}: {key}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn read_grant(
    r: &mut Reader<'_>,
    t: &dyn TableLike,
    gid: Arc<str>,
    routes: &[Route],
    key: Option<&Arc<[u8]>>,
) -> Option<GrantSpec> {
    let before = r.diags.len();
    let line = table_line(r, t);
    let ctx = format!("grant `{gid}`");
    r.unknown_keys(t, &GRANT_KEYS);
    let _ = r.string(t, "description");
    let mut globs = Vec::new();
    match r.string_list(t, "routes") {
        None if t.get("routes").is_none() => {
            r.error(
                line,
                format!(
                    "{ctx}: missing `routes`, e.g. routes = [\"persons.*\"] (globs over route ids)"
                ),
            );
        }
        None => {}
        Some(list) => {
            for v in list {
                let g = Glob::new(&v.text);
                if !routes.iter().any(|rt| g.matches(&rt.id)) {
                    let hint = suggestion(&v.text, routes.iter().map(|rt| &*rt.id));
                    r.error(
                        v.line,
                        format!("{ctx}: `{}` matches no route id{hint}", v.text),
                    );
                }
                globs.push(g);
            }
        }
    }
    let granted: Vec<&Route> = routes
        .iter()
        .filter(|rt| globs.iter().any(|g| g.matches(&rt.id)))
        .collect();
    let query = match t.get("query") {
        Some(Item::Value(Value::Array(a))) if a.is_empty() => Some(Vec::new()),
        _ => r.string_list(t, "query").map(|list| {
            list.into_iter()
                .map(|v| {
                    if !granted.is_empty() && !granted.iter().any(|rt| rt.query.iter().any(|q| **q == *v.text)) {
                        let known: Vec<&str> = granted.iter().flat_map(|rt| rt.query.iter().map(|q| &**q)).collect();
                        let hint = suggestion(&v.text, known);
                        r.error(v.line, format!("{ctx}: query parameter `{}` is accepted by none of the granted routes{hint}", v.text));
                    }
                    Arc::from(v.text)
                })
                .collect()
        }),
    };
    let fields = read_paths(r, t, "fields", &ctx);
    let outside = read_outside(r, t, &format!("{gid}.outside"), key);
    let mref = |spec: &str, s: Strategy| MaskRef {
        rule_id: gid.clone(),
        spec: Arc::from(spec.trim()),
        strategy: Arc::new(s),
    };
    let mut masks = Vec::new();
    if let Some(item) = t.get("mask") {
        let mline = r.key_line(t, "mask");
        match item.as_table_like() {
            None => r.error(mline, format!("{ctx}: `mask` must be a table of \"PATH\" = \"STRATEGY\", e.g. mask = {{ \"$.id_number\" = \"keep(6,4)\" }}")),
            Some(m) if m.len() > MAX_GRANT_ENTRIES => r.error(mline, format!("{ctx}: `mask` has more than {MAX_GRANT_ENTRIES} entries")),
            Some(m) => {
                for (p, v) in m.iter() {
                    let l = r.key_line(m, p).or(mline);
                    let Some(spec) = v.as_value().and_then(Value::as_str) else {
                        r.error(l, format!("{ctx}: mask `{p}` must be a strategy string, e.g. \"keep(6,4)\""));
                        continue;
                    };
                    let path = match JsonPath::parse(p) {
                        Ok(x) => x,
                        Err(e) => {
                            r.error(l, format!("{ctx}: mask: {e}"));
                            continue;
                        }
                    };
                    match Strategy::parse(spec, key) {
                        Ok(s) => masks.push((path, mref(spec, s))),
                        Err(e) => r.error(l, format!("{ctx}: mask `{p}`: {e}")),
                    }
                }
            }
        }
    }
    let mut mask_tags: Vec<(Kind, MaskRef)> = Vec::new();
    if let Some(item) = t.get("mask_tags") {
        let mline = r.key_line(t, "mask_tags");
        match item.as_table_like() {
            None => r.error(mline, format!("{ctx}: `mask_tags` must be a table of \"TAG\" = \"STRATEGY\", e.g. mask_tags = {{ \"pii.phone\" = \"keep(3,4)\" }}")),
            Some(m) => {
                for (tag, v) in m.iter() {
                    let l = r.key_line(m, tag).or(mline);
                    let Some(spec) = v.as_value().and_then(Value::as_str) else {
                        r.error(l, format!("{ctx}: mask_tags `{tag}` must be a strategy string, e.g. \"keep(3,4)\""));
                        continue;
                    };
                    let g = Glob::new(tag);
                    let kinds: Vec<Kind> = Kind::DETECTABLE.into_iter().filter(|k| g.matches(k.tag())).collect();
                    if kinds.is_empty() {
                        let known: Vec<&str> = Kind::DETECTABLE.iter().map(|k| k.tag()).collect();
                        r.error(l, format!("{ctx}: mask_tags: {}", unknown("detectable tag", tag, &known)));
                        continue;
                    }
                    match Strategy::parse(spec, key) {
                        Ok(s) => {
                            let m = mref(spec, s);
                            for k in kinds {
                                if !mask_tags.iter().any(|(x, _)| *x == k) {
                                    mask_tags.push((k, m.clone()));
                                }
                            }
                        }
                        Err(e) => r.error(l, format!("{ctx}: mask_tags `{tag}`: {e}")),
                    }
                }
            }
        }
    }
    if outside.is_some() && fields.is_none() {
        let l = r.key_line(t, "outside");
        r.push(
            Severity::Warning,
            l,
            format!("{ctx}: `outside` has no effect without `fields` (every field is in scope)"),
        );
    }
    (r.diags[before..]
        .iter()
        .all(|d| d.severity == Severity::Warning))
    .then_some(GrantSpec {
        id: gid,
        routes: globs,
        query,
        fields,
        outside,
        masks,
        mask_tags,
        line,
    })
}
