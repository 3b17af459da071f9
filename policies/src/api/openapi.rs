//! OpenAPI import: turns an OpenAPI 3.0/3.1 document (YAML or JSON) into
//! the skeleton of an API scope policy, for the security team to trim:
//! `[settings]` with the defaults, one `[[route]]` per path and method
//! (query parameters, a guess at where the records are), and a commented
//! example `[[caller]]` whose grant lists every response field path, with
//! the ones the column-name classifier recognises flagged and given a
//! suggested mask. Owns nothing at run time: the proxy never reads OpenAPI.
//! It must never invent access: the only caller it writes is commented out.

use std::collections::HashSet;
use std::fmt::Write as _;

use danxia_detectors::pii::{classify_column, Kind};
use serde_yaml_ng::Value;

use super::path::{JsonPath, Step};

/// Largest document accepted (big public APIs are a few megabytes).
pub const MAX_IMPORT_BYTES: usize = 32 << 20;
/// How deep `$ref`s and nested schemas are followed when listing fields.
const MAX_SCHEMA_DEPTH: usize = 8;
/// Most field paths listed per route (a skeleton, not a dump).
const MAX_FIELDS_PER_ROUTE: usize = 500;
/// Property names that hold the records of an object response.
const RECORD_ARRAYS: [&str; 7] = [
    "items", "data", "records", "results", "list", "rows", "content",
];
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Why a document could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ApiImportError {
    #[error("{source_name}: the document is larger than {max} bytes")]
    TooLarge { source_name: String, max: usize },
    #[error("{source_name}: not valid YAML or JSON: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: not an OpenAPI 3 document ({why}); Swagger 2.0 must be converted to OpenAPI 3 first")]
    NotOpenApi { source_name: String, why: String },
    #[error("{source_name}: the document has no paths to import")]
    NoPaths { source_name: String },
}

/// One imported route.
struct Imported {
    id: String,
    method: String,
    path: String,
    summary: Option<String>,
    query: Vec<String>,
    records: String,
    /// Response field paths with the kind the classifier guessed.
    fields: Vec<(String, Option<Kind>)>,
}

/// Converts an OpenAPI document into the text of a scope policy file;
/// `source_name` (a file name or URL) goes into the header.
pub fn import_openapi(text: &str, source_name: &str) -> Result<String, ApiImportError> {
    let src = || source_name.to_string();
    if text.len() > MAX_IMPORT_BYTES {
        return Err(ApiImportError::TooLarge {
            source_name: src(),
            max: MAX_IMPORT_BYTES,
        });
    }
    // YAML 1.2 is a superset of JSON: one parser reads both, and keeps the
    // document's order of paths and properties.
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| ApiImportError::Parse {
        source_name: src(),
        message: e.to_string(),
    })?;
    match doc.get("openapi").map(scalar) {
        Some(Some(v)) if v.starts_with("3.") => {}
        Some(Some(v)) => {
            return Err(ApiImportError::NotOpenApi {
                source_name: src(),
                why: format!("openapi version {v}"),
            })
        }
        _ => {
            let why = if doc.get("swagger").is_some() {
                "it is Swagger 2.0".to_string()
            } else {
                "no `openapi` key".to_string()
            };
            return Err(ApiImportError::NotOpenApi {
                source_name: src(),
                why,
            });
        }
    }
    let Some(paths) = doc.get("paths").and_then(Value::as_mapping) else {
        return Err(ApiImportError::NoPaths { source_name: src() });
    };
    let cx = Cx { doc: &doc };
    let mut routes: Vec<Imported> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut ids: HashSet<String> = HashSet::new();
    for (p, item) in paths {
        let Some(p) = scalar(p) else { continue };
        let item = cx.resolve(item);
        let Some(path) = template(&p) else {
            skipped.push(format!("{p}: a parameter that is not a whole segment"));
            continue;
        };
        let path_params = item.get("parameters");
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let method = m.to_ascii_uppercase();
            let mut query = Vec::new();
            for params in [path_params, op.get("parameters")].into_iter().flatten() {
                for prm in params.as_sequence().into_iter().flatten() {
                    let prm = cx.resolve(prm);
                    if prm.get("in").and_then(Value::as_str) == Some("query") {
                        if let Some(n) = prm.get("name").and_then(Value::as_str) {
                            if !query.iter().any(|q| q == n) {
                                query.push(n.to_string());
                            }
                        }
                    }
                }
            }
            let base = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(slug_operation)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| slug_path(m, &path));
            let mut id = base.clone();
            let mut n = 2;
            while !ids.insert(id.clone()) {
                id = format!("{base}-{n}");
                n += 1;
            }
            let schema = cx.response_schema(op);
            let (records, fields) = match schema {
                Some(s) => {
                    let mut fields = Vec::new();
                    let mut stack = Vec::new();
                    cx.fields(
                        s,
                        &JsonPath { steps: Vec::new() },
                        None,
                        0,
                        &mut stack,
                        &mut fields,
                    );
                    (cx.records(s), fields)
                }
                None => ("$".to_string(), Vec::new()),
            };
            let summary = op
                .get("summary")
                .or_else(|| op.get("description"))
                .and_then(Value::as_str)
                .map(|s| s.lines().next().unwrap_or("").trim().to_string())
                .filter(|s| !s.is_empty());
            routes.push(Imported {
                id,
                method,
                path: path.clone(),
                summary,
                query,
                records,
                fields,
            });
        }
    }
    if routes.is_empty() {
        return Err(ApiImportError::NoPaths { source_name: src() });
    }
    Ok(render(source_name, &doc, &routes, &skipped))
}

struct Cx<'a> {
    doc: &'a Value,
}

/// A scalar key or value as text (YAML keys like `200` are numbers).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<'a> Cx<'a> {
    /// Follows `$ref: '#/…'` (a few hops; other documents are not read).
    fn resolve(&self, mut v: &'a Value) -> &'a Value {
        for _ in 0..MAX_SCHEMA_DEPTH {
            match self.target(v) {
                Some(t) => v = t,
                None => break,
            }
        }
        v
    }

    fn target(&self, v: &Value) -> Option<&'a Value> {
        let r = v.get("$ref")?.as_str()?;
        let pointer = r.strip_prefix("#/")?;
        let mut cur = self.doc;
        for part in pointer.split('/') {
            let part = part.replace("~1", "/").replace("~0", "~");
            cur = cur.get(part.as_str())?;
        }
        Some(cur)
    }

    /// The JSON schema of the success response (200, else 2XX/201/default).
    fn response_schema(&self, op: &'a Value) -> Option<&'a Value> {
        let responses = op.get("responses")?.as_mapping()?;
        let mut best: Option<(u8, &Value)> = None;
        for (code, resp) in responses {
            let rank = match scalar(code).as_deref() {
                Some("200") => 0,
                Some("2XX" | "2xx") => 1,
                Some(c) if c.starts_with('2') => 2,
                Some("default") => 3,
                _ => continue,
            };
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, resp));
            }
        }
        let resp = self.resolve(best?.1);
        let content = resp.get("content")?.as_mapping()?;
        let media = content
            .iter()
            .find(|(k, _)| k.as_str().is_some_and(|k| k.contains("json")))
            .map(|(_, v)| v)?;
        media.get("schema").map(|s| self.resolve(s))
    }

    fn is_array(&self, s: &Value) -> bool {
        type_is(s, "array") || s.get("items").is_some()
    }

    fn is_object(&self, s: &Value) -> bool {
        type_is(s, "object") || s.get("properties").is_some() || s.get("allOf").is_some()
    }

    /// Properties of an object schema, `allOf` parts merged.
    fn properties(&self, s: &'a Value, out: &mut Vec<(String, &'a Value)>, depth: usize) {
        if depth > MAX_SCHEMA_DEPTH {
            return;
        }
        if let Some(props) = s.get("properties").and_then(Value::as_mapping) {
            for (k, v) in props {
                if let Some(k) = scalar(k) {
                    if !out.iter().any(|(n, _)| *n == k) {
                        out.push((k, v));
                    }
                }
            }
        }
        for part in s
            .get("allOf")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            self.properties(self.resolve(part), out, depth + 1);
        }
    }

    /// The records path guess: an array → `$[*]`; an object with an array
    /// property named like a page of records → `$.<prop>[*]`; else `$`.
    fn records(&self, s: &'a Value) -> String {
        if self.is_array(s) {
            return "$[*]".into();
        }
        let mut props = Vec::new();
        self.properties(s, &mut props, 0);
        for name in RECORD_ARRAYS {
            if let Some((n, v)) = props.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                if self.is_array(self.resolve(v)) {
                    let mut p = JsonPath {
                        steps: vec![Step::Key(n.as_str().into()), Step::AnyIndex],
                    };
                    p.steps.shrink_to_fit();
                    return p.to_string();
                }
            }
        }
        "$".into()
    }

    /// Leaf field paths below `s` at `at`. `stack` holds the schemas being
    /// walked (a `$ref` cycle stops there and lists the path itself).
    fn fields(
        &self,
        s: &'a Value,
        at: &JsonPath,
        name: Option<&str>,
        depth: usize,
        stack: &mut Vec<*const Value>,
        out: &mut Vec<(String, Option<Kind>)>,
    ) {
        if out.len() >= MAX_FIELDS_PER_ROUTE {
            return;
        }
        let s = self.resolve(s);
        let id = s as *const Value;
        let leaf = |out: &mut Vec<(String, Option<Kind>)>| {
            if at.steps.is_empty() {
                return;
            }
            let kind = name.and_then(classify_column).map(|(k, _)| k);
            let p = at.to_string();
            if !out.iter().any(|(x, _)| *x == p) {
                out.push((p, kind));
            }
        };
        if depth >= MAX_SCHEMA_DEPTH || stack.contains(&id) {
            leaf(out);
            return;
        }
        stack.push(id);
        if self.is_array(s) {
            let mut p = at.clone();
            p.steps.push(Step::AnyIndex);
            match s.get("items") {
                Some(items) => self.fields(items, &p, name, depth + 1, stack, out),
                None => leaf(out),
            }
        } else if self.is_object(s) {
            let mut props = Vec::new();
            self.properties(s, &mut props, 0);
            if props.is_empty() {
                leaf(out);
            }
            for (k, v) in props {
                let mut p = at.clone();
                p.steps.push(Step::Key(k.as_str().into()));
                self.fields(v, &p, Some(&k), depth + 1, stack, out);
            }
        } else if let Some(alts) = s
            .get("oneOf")
            .or_else(|| s.get("anyOf"))
            .and_then(Value::as_sequence)
        {
            let before = out.len();
            for a in alts {
                self.fields(a, at, name, depth + 1, stack, out);
            }
            if out.len() == before {
                leaf(out);
            }
        } else {
            leaf(out);
        }
        stack.pop();
    }
}

fn type_is(s: &Value, t: &str) -> bool {
    match s.get("type") {
        Some(Value::String(x)) => x == t,
        Some(Value::Sequence(xs)) => xs.iter().any(|x| x.as_str() == Some(t)),
        _ => false,
    }
}

/// `/persons/{person-id}` → `/persons/{person_id}`; `None` when a segment
/// mixes text and a parameter (`/files/{name}.json`), which templates
/// cannot express.
fn template(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let mut out = String::new();
    for seg in p.split('/').skip(1) {
        out.push('/');
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let name: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if name.is_empty() {
                return None;
            }
            write!(out, "{{{name}}}").ok()?;
        } else if seg.contains(['{', '}']) {
            return None;
        } else {
            out.push_str(seg);
        }
    }
    // A trailing slash (`/persons/`) is written without it.
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    Some(out)
}

/// `listPersons` → `list-persons`; `persons_get` → `persons_get`.
fn slug_operation(op: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in op.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            prev_lower = true;
        } else if matches!(c, '.' | '_' | '-') {
            out.push(c);
            prev_lower = false;
        } else if !out.ends_with('-') {
            out.push('-');
            prev_lower = false;
        }
    }
    out.trim_matches('-').chars().take(100).collect()
}

/// `get` + `/api/v1/persons/{id}` → `get.api.v1.persons.id`.
fn slug_path(method: &str, path: &str) -> String {
    let mut out = method.to_string();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('.');
        let s = slug_operation(seg.trim_matches(['{', '}']));
        out.push_str(if s.is_empty() { "x" } else { &s });
    }
    out
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A suggested strategy for a classified field.
fn suggested_mask(k: Kind) -> &'static str {
    match k {
        Kind::IdNumber | Kind::BankCard => "keep(6,4)",
        Kind::Phone => "keep(3,4)",
        Kind::Name => "keep(1,0)",
        _ => "redact",
    }
}

fn render(source_name: &str, doc: &Value, routes: &[Imported], skipped: &[String]) -> String {
    let mut o = String::new();
    let title = doc
        .get("info")
        .and_then(|i| i.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("(untitled)");
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let line = |o: &mut String, s: &str| {
        o.push_str(s);
        o.push('\n');
    };
    let _ = writeln!(
        o,
        "# API scope policy skeleton generated by `danxia api import`"
    );
    let _ = writeln!(
        o,
        "# from: {} ({})",
        source_name.replace('\n', " "),
        title.replace('\n', " ")
    );
    let _ = writeln!(o, "# on:   {date}");
    line(&mut o, "#");
    line(
        &mut o,
        "# TRIM THIS before use: delete the routes no caller needs, check each",
    );
    line(
        &mut o,
        "# `records` guess, and give every caller only the routes, query parameters",
    );
    line(
        &mut o,
        "# and fields it needs. The example caller at the end is commented out:",
    );
    line(
        &mut o,
        "# uncomment it (remove the leading `# ` of its lines) to start from it.",
    );
    line(
        &mut o,
        "# See docs/api-policy.md; check with `danxia check`.",
    );
    for s in skipped {
        let _ = writeln!(o, "# skipped {}", s.replace('\n', " "));
    }
    line(&mut o, "");
    line(&mut o, "[settings]");
    line(
        &mut o,
        "unknown_route = \"deny\"   # a request matching no [[route]] gets 404",
    );
    line(
        &mut o,
        "outside = \"remove\"       # fields outside a grant's `fields` are removed",
    );
    line(
        &mut o,
        "max_body = \"1MiB\"        # default request body limit",
    );
    line(
        &mut o,
        "# night = \"00:00-06:00\"  # quiet hours (local time)",
    );
    for r in routes {
        line(&mut o, "");
        line(&mut o, "[[route]]");
        let _ = writeln!(o, "id = {}", toml_str(&r.id));
        if let Some(s) = &r.summary {
            let _ = writeln!(o, "description = {}", toml_str(s));
        }
        let _ = writeln!(o, "method = {}", toml_str(&r.method));
        let _ = writeln!(o, "path = {}", toml_str(&r.path));
        if !r.query.is_empty() {
            let q: Vec<String> = r.query.iter().map(|q| toml_str(q)).collect();
            let _ = writeln!(o, "query = [{}]", q.join(", "));
        }
        let _ = writeln!(
            o,
            "records = {}   # guessed from the 200 response schema",
            toml_str(&r.records)
        );
        if r.fields.iter().any(|(_, k)| k.is_some()) {
            line(&mut o, "sensitive = true");
        }
    }

    // The example caller: every line commented with "# ", explanations
    // with "## " so that uncommenting leaves them comments.
    let mut fields: Vec<&(String, Option<Kind>)> = Vec::new();
    for r in routes {
        for f in &r.fields {
            if !fields.iter().any(|(p, _)| *p == f.0) {
                fields.push(f);
            }
        }
    }
    line(&mut o, "");
    line(
        &mut o,
        "## Example caller: everything the API returns, classified fields flagged",
    );
    line(
        &mut o,
        "## and masked. Narrow `routes` and `fields` to what this caller needs.",
    );
    line(&mut o, "# [[caller]]");
    line(&mut o, "# id = \"example-department\"");
    line(&mut o, "# name = \"Example Department\"");
    line(
        &mut o,
        "# quota = { requests_per_minute = 600, records_per_day = 100000 }",
    );
    line(&mut o, "#");
    line(&mut o, "#   [[caller.grant]]");
    line(&mut o, "#   routes = [\"*\"]");
    if !fields.is_empty() {
        line(&mut o, "#   fields = [");
        for (p, k) in &fields {
            match k {
                Some(k) => {
                    let _ = writeln!(o, "#     {},   # {}", toml_str(p), k.tag());
                }
                None => {
                    let _ = writeln!(o, "#     {},", toml_str(p));
                }
            }
        }
        line(&mut o, "#   ]");
    }
    let masked: Vec<&&(String, Option<Kind>)> =
        fields.iter().filter(|(_, k)| k.is_some()).collect();
    if !masked.is_empty() {
        line(&mut o, "#");
        line(&mut o, "#   [caller.grant.mask]");
        for (p, k) in masked {
            if let Some(k) = k {
                let _ = writeln!(
                    o,
                    "#   {} = {}   # {}",
                    toml_str(p),
                    toml_str(suggested_mask(*k)),
                    k.tag()
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiLoadOptions, ApiPolicy, FieldAction};

    const FIXTURE: &str = include_str!("testdata/citizens.openapi.yaml");

    /// The skeleton with the example caller uncommented.
    fn uncomment(skeleton: &str) -> String {
        let start = skeleton.find("# [[caller]]").unwrap();
        let (head, tail) = skeleton.split_at(start);
        let tail: Vec<&str> = tail
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .or_else(|| l.strip_prefix('#'))
                    .unwrap_or(l)
            })
            .collect();
        format!("{head}{}\n", tail.join("\n"))
    }

    #[test]
    fn imports_the_citizen_records_api() {
        let out = import_openapi(FIXTURE, "citizens.openapi.yaml").unwrap();
        for want in [
            "# from: citizens.openapi.yaml (Citizen Records API)",
            "TRIM THIS",
            "[settings]",
            "id = \"list-persons\"",
            "path = \"/api/v1/persons\"",
            "query = [\"page\", \"size\", \"district\"]",
            "records = \"$.items[*]\"",
            "id = \"get-person\"",
            "path = \"/api/v1/persons/{id}\"",
            "id = \"export-persons\"",
            "query = [\"n\"]",
            "records = \"$[*]\"",
            "id = \"post.api.v1.search\"",
            "#     \"$.items[*].id_number\",   # pii.id_number",
            "#     \"$.items[*].phone\",   # pii.phone",
            "#   \"$.items[*].id_number\" = \"keep(6,4)\"   # pii.id_number",
            "#     \"$.guardian\",",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        // Stats: an object without a records array is one record.
        let stats = out.split("id = \"stats\"").nth(1).unwrap();
        assert!(stats.contains("records = \"$\""), "{stats}");
    }

    #[test]
    fn skeleton_loads_as_is_and_with_the_example_caller() {
        let out = import_openapi(FIXTURE, "citizens.openapi.yaml").unwrap();
        for text in [out.clone(), uncomment(&out)] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("00-imported.toml"), &text).unwrap();
            let opts = ApiLoadOptions {
                dir: dir.path().to_path_buf(),
                mask_key: None,
            };
            let p = ApiPolicy::load(&opts).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(p.routes().len(), 5);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00-imported.toml"), uncomment(&out)).unwrap();
        let p = ApiPolicy::load(&ApiLoadOptions {
            dir: dir.path().to_path_buf(),
            mask_key: None,
        })
        .unwrap();
        let m = p.route("GET", "/api/v1/persons").unwrap();
        let g = p.grant("example-department", &m).unwrap();
        let (_, items) = g.fields.member(g.fields.root(), "items");
        let rec = g.fields.element(items, 0);
        assert!(g.fields.node(rec).is_record);
        let (a, id) = g.fields.member(rec, "id_number");
        assert_eq!(a, FieldAction::Keep);
        assert_eq!(g.fields.node(id).mask.map(|m| &*m.spec), Some("keep(6,4)"));
    }

    #[test]
    fn json_documents_and_errors() {
        let json = r#"{"openapi": "3.1.0", "info": {"title": "T"}, "paths": {
            "/things": {"get": {"responses": {"200": {"content": {"application/json":
                {"schema": {"type": "object", "properties": {"data": {"type": "array",
                  "items": {"type": "object", "properties": {"email": {"type": "string"}}}}}}}}}}}}}}"#;
        let out = import_openapi(json, "t.json").unwrap();
        assert!(out.contains("id = \"get.things\""), "{out}");
        assert!(out.contains("records = \"$.data[*]\""), "{out}");
        assert!(out.contains("\"$.data[*].email\",   # pii.email"), "{out}");
        assert!(matches!(
            import_openapi("swagger: '2.0'\npaths: {}\n", "s.yaml"),
            Err(ApiImportError::NotOpenApi { .. })
        ));
        assert!(matches!(
            import_openapi("openapi: 3.0.0\n", "s.yaml"),
            Err(ApiImportError::NoPaths { .. })
        ));
        assert!(matches!(
            import_openapi("{ not yaml: [", "s.yaml"),
            Err(ApiImportError::Parse { .. })
        ));
    }

    #[test]
    fn slugs_and_templates() {
        assert_eq!(slug_operation("listPersons"), "list-persons");
        assert_eq!(slug_operation("Persons_Get v2"), "persons_get-v2");
        assert_eq!(
            slug_path("get", "/api/v1/persons/{id}"),
            "get.api.v1.persons.id"
        );
        assert_eq!(
            template("/a/{person-id}/").as_deref(),
            Some("/a/{person_id}")
        );
        assert_eq!(template("/files/{name}.json"), None);
    }
}
