//! Compiling a policy directory: reads every `*.toml` file in name order,
//! validates settings, groups and rules, and turns each rule's lists into
//! pre-built matchers ([`Rule`]). Owns the meaning of every key of the
//! policy language; reports every problem it finds (it never stops at the
//! first) and never guesses: a rule with an error is left out, and any error
//! rejects the policy in [`crate::Policy::load`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use danxia_detectors::Operation;
use ipnet::IpNet;
use jiff::tz::TimeZone;
use toml_edit::{Item, Table, TableLike};

use crate::allowlist::Allowlist;
use crate::classification::Classification;
use crate::conditions;
use crate::error::{Diagnostic, Severity};
use crate::glob::{Glob, NamePattern};
use crate::lang::{parse_document, suggestion, unknown, Located, Reader, Source};
use crate::time::{Window, DEFAULT_TIMEZONE, MAX_WINDOWS};
use crate::{Action, AuditText, Identity, LoadOptions, Mode};

/// Deny text for clients when neither the rule nor `[policy]` sets one.
pub(crate) const DEFAULT_DENY_MESSAGE: &str = "statement denied by policy";
/// SQLSTATE of a denied statement: PostgreSQL's insufficient_privilege.
pub(crate) const DEFAULT_DENY_SQLSTATE: &str = "42501";
/// Rule id of a decision no rule made.
pub(crate) const DEFAULT_RULE_ID: &str = "default";
/// Rule id of a decision no rule made on a statement that did not parse.
pub(crate) const UNPARSED_RULE_ID: &str = "default.unparsed";

const TOP_KEYS: [&str; 3] = ["policy", "groups", "rule"];
const POLICY_KEYS: [&str; 5] = [
    "default_action",
    "unparsed_action",
    "timezone",
    "deny_message",
    "deny_sqlstate",
];
/// Every key a `[[rule]]` may have, in the order explanations list them.
pub(crate) const RULE_KEYS: [&str; 24] = [
    "id",
    "description",
    "action",
    "mode",
    "message",
    "audit",
    "mask",
    "returned",
    "window",
    "anomaly",
    "operations",
    "conditions",
    "users",
    "databases",
    "applications",
    "tls_subjects",
    "api_callers",
    "addresses",
    "time",
    "tables",
    "functions",
    "columns",
    "tags",
    "min_level",
];

/// Named sets of operations usable in `operations`.
const OPERATION_GROUPS: [(&str, &[Operation]); 5] = [
    ("read", &[Operation::Select, Operation::CopyOut]),
    (
        "write",
        &[
            Operation::Insert,
            Operation::Update,
            Operation::Delete,
            Operation::Merge,
            Operation::CopyIn,
        ],
    ),
    (
        "dml",
        &[
            Operation::Select,
            Operation::CopyOut,
            Operation::Insert,
            Operation::Update,
            Operation::Delete,
            Operation::Merge,
            Operation::CopyIn,
        ],
    ),
    ("copy", &[Operation::CopyIn, Operation::CopyOut]),
    ("all", &Operation::ALL),
];

/// Every operation's bit.
pub(crate) const ALL_OPERATIONS: u32 = (1 << Operation::ALL.len()) - 1;

pub(crate) fn operation_bit(op: Operation) -> u32 {
    1 << (op as u32)
}

fn operation_bits(name: &str) -> Option<u32> {
    if let Some(op) = Operation::ALL.iter().find(|o| o.as_str() == name) {
        return Some(operation_bit(*op));
    }
    OPERATION_GROUPS
        .iter()
        .find(|(g, _)| *g == name)
        .map(|(_, ops)| ops.iter().fold(0, |m, o| m | operation_bit(*o)))
}

/// The `[policy]` table.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) default_action: Action,
    pub(crate) unparsed_action: Action,
    pub(crate) timezone: TimeZone,
    pub(crate) deny_message: Arc<str>,
    pub(crate) deny_sqlstate: String,
}

impl Settings {
    /// Settings of a policy whose files have no `[policy]` table.
    pub(crate) fn defaults() -> Settings {
        Settings {
            default_action: Action::Allow,
            unparsed_action: Action::Allow,
            // The bundled tzdb always has the default zone; UTC is only a
            // belt-and-braces fallback.
            timezone: TimeZone::get(DEFAULT_TIMEZONE).unwrap_or(TimeZone::UTC),
            deny_message: Arc::from(DEFAULT_DENY_MESSAGE),
            deny_sqlstate: DEFAULT_DENY_SQLSTATE.to_string(),
        }
    }
}

/// Which session attribute an identity list matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentField {
    Users,
    Databases,
    Applications,
    TlsSubjects,
    ApiCallers,
}

impl IdentField {
    /// Whether every session has this attribute.
    pub(crate) fn value_always_present(self) -> bool {
        matches!(
            self,
            IdentField::Users | IdentField::Databases | IdentField::Applications
        )
    }

    pub(crate) fn value(self, id: &Identity) -> Option<&str> {
        match self {
            IdentField::Users => Some(&id.user),
            IdentField::Databases => Some(&id.database),
            IdentField::Applications => Some(&id.application),
            IdentField::TlsSubjects => id.tls_subject.as_deref(),
            IdentField::ApiCallers => id.api_caller.as_deref(),
        }
    }
}

/// Globs with `!` exclusions: matches when some positive pattern matches
/// (or there is none) and no excluded one does. A session without the
/// attribute (no TLS subject, no API caller) matches only a list of
/// exclusions alone.
#[derive(Debug, Clone)]
pub(crate) struct IdentList {
    pub(crate) pos: Vec<Glob>,
    pub(crate) neg: Vec<Glob>,
}

impl IdentList {
    pub(crate) fn matches(&self, value: Option<&str>) -> bool {
        match value {
            None => self.pos.is_empty(),
            Some(v) => {
                (self.pos.is_empty() || self.pos.iter().any(|g| g.matches(v)))
                    && !self.neg.iter().any(|g| g.matches(v))
            }
        }
    }
}

/// Networks with `!` exclusions, with [`IdentList`]'s semantics.
#[derive(Debug, Clone)]
pub(crate) struct AddrList {
    pub(crate) pos: Vec<IpNet>,
    pub(crate) neg: Vec<IpNet>,
}

impl AddrList {
    pub(crate) fn matches(&self, addr: Option<IpAddr>) -> bool {
        match addr {
            None => self.pos.is_empty(),
            Some(a) => {
                (self.pos.is_empty() || self.pos.iter().any(|n| n.contains(&a)))
                    && !self.neg.iter().any(|n| n.contains(&a))
            }
        }
    }
}

/// `[table.]column`: the column glob, and a qualifier that must match one
/// of the statement's tables.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPattern {
    pub(crate) table: Option<NamePattern>,
    pub(crate) column: Glob,
}

/// One compiled match key.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Ident(IdentField, IdentList),
    Addresses(AddrList),
    /// Bits of the policy's windows this rule lists.
    Time(u32),
    Operations(u32),
    Tables(Vec<NamePattern>),
    Functions(Vec<NamePattern>),
    Columns(Vec<ColumnPattern>),
    Tags(Vec<Glob>),
    MinLevel(u8),
    Conditions(u32),
}

/// A match key as compiled and as written (for explanations).
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) matcher: Matcher,
    pub(crate) written: String,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) description: String,
    pub(crate) action: Action,
    pub(crate) mode: Option<Mode>,
    pub(crate) message: Option<Arc<str>>,
    pub(crate) audit: Option<AuditText>,
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
    /// Operations the rule can match ([`ALL_OPERATIONS`] without the key):
    /// tested first, it rules out most rules for a statement in one AND.
    pub(crate) ops: u32,
    /// Conditions of which one must hold (0 without the key).
    pub(crate) conds: u32,
    pub(crate) keys: Vec<Key>,
    /// `[rule.mask]` of a `mask` rule.
    pub(crate) mask: Option<crate::mask::RuleMask>,
    /// `returned` thresholds: the rule acts on results, not statements.
    pub(crate) returned: Vec<(crate::mask::Counted, u64)>,
    /// `window` in seconds: `returned` counts add up per identity over it.
    pub(crate) window: Option<u64>,
    /// `anomaly` score threshold in hundredths: the rule acts on the
    /// behaviour baseline's score, not on the statement.
    pub(crate) anomaly: Option<u32>,
}

impl Rule {
    /// An allow or deny rule that ends evaluation when it matches (alert
    /// and mask rules, and rules that watch results, never do).
    pub(crate) fn decides(&self) -> bool {
        matches!(
            self.action,
            Action::Allow | Action::Deny | Action::Quarantine
        ) && self.returned.is_empty()
            && self.anomaly.is_none()
    }

    pub(crate) fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Everything a policy directory (and its data files) compiles to.
pub(crate) struct Compiled {
    pub(crate) settings: Settings,
    pub(crate) rules: Vec<Rule>,
    pub(crate) windows: Vec<Window>,
    pub(crate) classification: Classification,
    pub(crate) allowlist: Allowlist,
}

/// A `[groups]` entry.
struct Group {
    members: Vec<String>,
    file: PathBuf,
    line: Option<usize>,
}

fn location(file: &Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", file.display()),
        None => file.display().to_string(),
    }
}

/// Reads and compiles everything `opts` names; the diagnostics say whether
/// the result may be used.
pub(crate) fn compile(opts: &LoadOptions) -> (Compiled, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut docs = Vec::new();
    let data_files: Vec<PathBuf> = [&opts.classification, &opts.allowlist]
        .into_iter()
        .flatten()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    for (path, text) in read_dir(&opts.dir, &data_files, "policy", &mut diags) {
        let src = Source::new(&path, &text);
        if let Some(doc) = parse_document(&src, &text, &mut diags) {
            docs.push((src, doc));
        }
    }

    // Pass 1: settings and groups, which rules in any file may use.
    let mut settings = Settings::defaults();
    let mut settings_at: Option<String> = None;
    let mut groups: HashMap<String, Group> = HashMap::new();
    for (src, doc) in &docs {
        let mut r = Reader::new(src, &mut diags);
        let root = doc.as_table();
        r.unknown_keys(root, &TOP_KEYS);
        if let Some(item) = root.get("policy") {
            let line = r.key_line(root, "policy");
            match (item.as_table_like(), &settings_at) {
                (None, _) => r.error(line, "`policy` must be a table: write `[policy]`"),
                (Some(_), Some(first)) => r.error(
                    line,
                    format!("a second [policy] table; only one file may have it (the first is at {first})"),
                ),
                (Some(t), None) => {
                    settings_at = Some(location(&src.path, line));
                    read_settings(&mut r, t, &mut settings);
                }
            }
        }
        if let Some(item) = root.get("groups") {
            match item.as_table_like() {
                Some(t) => read_groups(&mut r, t, &mut groups),
                None => {
                    let line = r.key_line(root, "groups");
                    r.error(line, "`groups` must be a table: write `[groups]`");
                }
            }
        }
    }

    // Pass 2: rules, in file order then rule order.
    let mut cx = RuleContext {
        groups: &groups,
        windows: Vec::new(),
        ids: HashMap::new(),
        mask_key: opts.mask_key.clone(),
    };
    let mut rules = Vec::new();
    for (src, doc) in &docs {
        let mut r = Reader::new(src, &mut diags);
        let root = doc.as_table();
        match root.get("rule") {
            None => {}
            Some(Item::ArrayOfTables(tables)) => {
                for t in tables.iter() {
                    if let Some(rule) = compile_rule(&mut r, t, &mut cx) {
                        rules.push(rule);
                    }
                }
            }
            Some(_) => {
                let line = r.key_line(root, "rule");
                r.error(line, "rules must be written as `[[rule]]` tables");
            }
        }
    }
    crate::check::check_rules(&rules, &mut diags);

    let classification = match &opts.classification {
        Some(path) => Classification::load(path, &mut diags),
        None => Classification::default(),
    };
    let allowlist = match &opts.allowlist {
        Some(path) => Allowlist::load(path, &mut diags),
        None => Allowlist::default(),
    };
    let compiled = Compiled {
        settings,
        rules,
        windows: cx.windows,
        classification,
        allowlist,
    };
    (compiled, diags)
}

/// `(path, text)` of every `*.toml` file in `dir`, in file-name order,
/// except the data files (`skip`: the classification and allowlist, should
/// they be kept in the same directory). `what` names the policy in errors
/// (`policy`, `API policy`).
pub(crate) fn read_dir(
    dir: &Path,
    skip: &[PathBuf],
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, String)> {
    let mut error = |file: &Path, message: String| {
        diags.push(Diagnostic {
            severity: Severity::Error,
            file: Some(file.to_path_buf()),
            line: None,
            rule_id: None,
            message,
        })
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            error(dir, format!("cannot read the {what} directory: {e}"));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .filter(|p| {
            let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            !skip.contains(&canonical)
        })
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if paths.is_empty() {
        error(
            dir,
            format!(
                "no {what} files (*.toml) in the {what} directory; refusing to load an empty policy"
            ),
        );
    }
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        permission_diag(&p, &format!("{what} file"), diags);
        match std::fs::read_to_string(&p) {
            Ok(text) => out.push((p, text)),
            Err(e) => diags.push(Diagnostic {
                severity: Severity::Error,
                file: Some(p.clone()),
                line: None,
                rule_id: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    out
}

/// Adds what [`crate::perms::check_trusted`] finds about `path` to `diags`:
/// an error (the policy does not load) or a warning.
pub(crate) fn permission_diag(path: &Path, what: &str, diags: &mut Vec<Diagnostic>) {
    let Some(f) = crate::perms::check_trusted(path, what) else {
        return;
    };
    let severity = match f {
        crate::perms::Finding::Refuse(_) => Severity::Error,
        crate::perms::Finding::Warn(_) => Severity::Warning,
    };
    diags.push(Diagnostic {
        severity,
        file: Some(path.to_path_buf()),
        line: None,
        rule_id: None,
        message: f.message().to_string(),
    });
}

fn parse_action(r: &mut Reader<'_>, v: &Located, key: &str) -> Option<Action> {
    match v.text.as_str() {
        "allow" => Some(Action::Allow),
        "deny" => Some(Action::Deny),
        "alert" => Some(Action::Alert),
        "mask" if key == "action" => Some(Action::Mask),
        "throttle" if key == "action" => Some(Action::Throttle),
        "quarantine" if key == "action" => Some(Action::Quarantine),
        other => {
            let known: &[&str] = if key == "action" {
                &["allow", "deny", "alert", "mask", "throttle", "quarantine"]
            } else {
                &["allow", "deny", "alert"]
            };
            r.error(v.line, unknown(key, other, known));
            None
        }
    }
}

fn read_settings(r: &mut Reader<'_>, t: &dyn TableLike, s: &mut Settings) {
    r.unknown_keys(t, &POLICY_KEYS);
    if let Some(v) = r.string(t, "default_action") {
        if let Some(a) = parse_action(r, &v, "default_action") {
            s.default_action = a;
        }
    }
    if let Some(v) = r.string(t, "unparsed_action") {
        if let Some(a) = parse_action(r, &v, "unparsed_action") {
            s.unparsed_action = a;
        }
    }
    if let Some(v) = r.string(t, "timezone") {
        match TimeZone::get(&v.text) {
            Ok(tz) => s.timezone = tz,
            Err(_) => r.error(
                v.line,
                format!(
                    "unknown time zone `{}` (use an IANA name such as {DEFAULT_TIMEZONE} or UTC)",
                    v.text
                ),
            ),
        }
    }
    if let Some(v) = r.string(t, "deny_message") {
        if let Some(why) = bad_client_text(&v.text) {
            r.error(v.line, format!("deny_message: {why}"));
        }
        s.deny_message = Arc::from(v.text.as_str());
    }
    if let Some(v) = r.string(t, "deny_sqlstate") {
        let b = v.text.as_bytes();
        if b.len() == 5
            && b.iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        {
            s.deny_sqlstate = v.text;
        } else {
            r.error(
                v.line,
                format!(
                    "bad deny_sqlstate `{}`: a SQLSTATE is five digits or capital letters, e.g. 42501",
                    v.text
                ),
            );
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn read_groups(r: &mut Reader<'_>, t: &dyn TableLike, groups: &mut HashMap<String, Group>) {
    for (name, _) in t.iter() {
        let line = r.key_line(t, name);
        if !valid_name(name) {
            r.error(
                line,
                format!("bad group name `{name}`: use letters, digits, `.`, `_` and `-`"),
            );
            continue;
        }
        let Some(members) = r.string_list(t, name) else {
            continue;
        };
        if let Some(first) = groups.get(name) {
            let at = location(&first.file, first.line);
            r.error(
                line,
                format!("duplicate group `{name}` (first defined at {at})"),
            );
            continue;
        }
        let mut ok = true;
        for m in &members {
            if m.text.starts_with('!') || m.text.starts_with('@') {
                r.error(
                    m.line,
                    format!(
                        "group `{name}`: member `{}` cannot be negated or name another group",
                        m.text
                    ),
                );
                ok = false;
            }
        }
        if ok {
            groups.insert(
                name.to_string(),
                Group {
                    members: members.into_iter().map(|m| m.text).collect(),
                    file: r.src.path.clone(),
                    line,
                },
            );
        }
    }
}

/// State shared by every rule of a policy.
struct RuleContext<'g> {
    groups: &'g HashMap<String, Group>,
    /// The policy's distinct time windows; a rule's time key is a bitmask
    /// of indexes into this.
    windows: Vec<Window>,
    /// First location of each rule id.
    ids: HashMap<String, String>,
    /// The deployment's key for `hash` masks.
    mask_key: Option<Arc<[u8]>>,
}

/// One list entry after group expansion.
struct Entry {
    negated: bool,
    text: String,
    line: Option<usize>,
}

impl RuleContext<'_> {
    /// Expands `!` and `@group` references in a list.
    fn expand(&self, r: &mut Reader<'_>, key: &str, items: &[Located]) -> Option<Vec<Entry>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let (negated, body) = match item.text.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, item.text.as_str()),
            };
            match body.strip_prefix('@') {
                Some(name) => match self.groups.get(name) {
                    Some(g) => out.extend(g.members.iter().map(|m| Entry {
                        negated,
                        text: m.clone(),
                        line: item.line,
                    })),
                    None => {
                        let hint = suggestion(name, self.groups.keys().map(String::as_str));
                        r.error(item.line, format!("`{key}`: unknown group `@{name}`{hint}"));
                        ok = false;
                    }
                },
                None if negated && body.is_empty() => {
                    r.error(
                        item.line,
                        format!("`{key}`: `!` must be followed by a pattern"),
                    );
                    ok = false;
                }
                None => out.push(Entry {
                    negated,
                    text: body.to_string(),
                    line: item.line,
                }),
            }
        }
        ok.then_some(out)
    }

    /// Reports negations in a list that does not support them.
    fn no_negation(r: &mut Reader<'_>, key: &str, entries: &[Entry]) -> bool {
        let mut ok = true;
        for e in entries.iter().filter(|e| e.negated) {
            r.error(
                e.line,
                format!(
                    "`{key}` does not support `!` exclusions (`!{}`); put an earlier allow rule for the exception instead",
                    e.text
                ),
            );
            ok = false;
        }
        ok
    }
}

fn written(items: &[Located]) -> String {
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    format!("[{}]", texts.join(", "))
}

fn compile_rule(r: &mut Reader<'_>, t: &Table, cx: &mut RuleContext<'_>) -> Option<Rule> {
    r.rule = None;
    let errors_before = r.diags.len();
    let header = r
        .src
        .line_of(t.span())
        .or_else(|| t.iter().next().and_then(|(k, _)| r.key_line(t, k)));
    let id = r.string(t, "id");
    match &id {
        None if t.get("id").is_none() => {
            r.error(header, "rule without `id`: every rule needs a unique id")
        }
        None => {}
        Some(id) if !valid_name(&id.text) => {
            r.error(
                id.line,
                format!(
                    "bad rule id `{}`: use letters, digits, `.`, `_` and `-`",
                    id.text
                ),
            );
            r.rule = Some(id.text.clone());
        }
        Some(id) => {
            r.rule = Some(id.text.clone());
            let here = location(&r.src.path, header);
            if let Some(first) = cx.ids.get(&id.text) {
                r.error(
                    id.line,
                    format!("duplicate rule id (first defined at {first})"),
                );
            } else {
                cx.ids.insert(id.text.clone(), here);
            }
        }
    }
    r.unknown_keys(t, &RULE_KEYS);

    let description = r.string(t, "description");
    match &description {
        None if t.get("description").is_none() => r.error(
            header,
            "missing `description`: say in plain words what the rule is for",
        ),
        Some(d) if d.text.trim().is_empty() => r.error(d.line, "`description` is empty"),
        _ => {}
    }
    let action = match r.string(t, "action") {
        Some(v) => parse_action(r, &v, "action"),
        None => {
            if t.get("action").is_none() {
                r.error(header, "missing `action` (allow, deny or alert)");
            }
            None
        }
    };
    let mode = r.string(t, "mode").and_then(|v| match v.text.as_str() {
        "learn" => Some(Mode::Learn),
        "monitor" => Some(Mode::Monitor),
        "enforce" => Some(Mode::Enforce),
        other => {
            r.error(
                v.line,
                unknown("mode", other, &["learn", "monitor", "enforce"]),
            );
            None
        }
    });
    let audit = r.string(t, "audit").and_then(|v| match v.text.as_str() {
        "full" => Some(AuditText::Full),
        "normalized" => Some(AuditText::Normalized),
        "none" => Some(AuditText::None),
        other => {
            r.error(
                v.line,
                unknown("audit", other, &["full", "normalized", "none"]),
            );
            None
        }
    });
    let message = r.string(t, "message").map(|m| {
        if let Some(why) = bad_client_text(&m.text) {
            r.error(m.line, format!("message: {why}"));
        }
        Arc::from(m.text.as_str())
    });

    let rule_id = id.as_ref().map(|i| i.text.clone()).unwrap_or_default();
    let mask = crate::mask::compile_mask(r, t, &rule_id, cx.mask_key.as_ref());
    let returned = crate::mask::compile_returned(r, t).unwrap_or_default();
    match action {
        Some(Action::Mask) if !crate::mask::present(t, "mask") => r.error(
            header,
            "a `mask` rule needs a [rule.mask] table saying which columns or tags to mask and how",
        ),
        Some(a) if a != Action::Mask && crate::mask::present(t, "mask") => {
            let l = r.key_line(t, "mask");
            r.error(
                l,
                "[rule.mask] is only read by rules with action = \"mask\"",
            )
        }
        _ => {}
    }
    let acting = |a: Option<Action>| {
        matches!(
            a,
            Some(Action::Alert | Action::Deny | Action::Throttle | Action::Quarantine)
        )
    };
    if crate::mask::present(t, "returned") && !acting(action) {
        let l = r.key_line(t, "returned");
        r.error(
            l,
            "`returned` needs action = \"alert\", \"deny\", \"throttle\" or \"quarantine\" (what to do once a result reaches the count)",
        );
    }
    let window = crate::mask::compile_window(r, t);
    if window.is_some() && !crate::mask::present(t, "returned") {
        let l = r.key_line(t, "window");
        r.error(
            l,
            "`window` needs `returned`: it says over how long the identity's `returned` counts add up",
        );
    }
    if window.is_none()
        && returned
            .iter()
            .any(|(c, _)| *c == crate::mask::Counted::Statements)
    {
        let l = r.key_line(t, "returned");
        r.error(
            l,
            "returned.statements counts statements over a `window`: add e.g. window = \"1h\"",
        );
    }
    let anomaly = crate::mask::compile_anomaly(r, t);
    if crate::mask::present(t, "anomaly") {
        let l = r.key_line(t, "anomaly");
        if !acting(action) {
            r.error(
                l,
                "`anomaly` needs action = \"alert\", \"deny\", \"throttle\" or \"quarantine\" (what to do once the score is reached)",
            );
        }
        if crate::mask::present(t, "returned") {
            r.error(
                l,
                "a rule has either `anomaly` or `returned`, not both: write two rules",
            );
        }
    }

    let mut keys = Vec::new();
    let mut ops = ALL_OPERATIONS;
    let mut conds = 0;
    // The first ten keys are the rule's own settings, not match keys.
    for name in RULE_KEYS.iter().skip(10) {
        let Some(items) = list_key(r, t, name) else {
            continue;
        };
        let matcher = match *name {
            "operations" => compile_operations(r, cx, &items)
                .inspect(|m| ops = *m)
                .map(Matcher::Operations),
            "conditions" => compile_conditions(r, cx, &items)
                .inspect(|m| conds = *m)
                .map(Matcher::Conditions),
            "users" => {
                compile_ident(r, cx, name, &items).map(|l| Matcher::Ident(IdentField::Users, l))
            }
            "databases" => {
                compile_ident(r, cx, name, &items).map(|l| Matcher::Ident(IdentField::Databases, l))
            }
            "applications" => compile_ident(r, cx, name, &items)
                .map(|l| Matcher::Ident(IdentField::Applications, l)),
            "tls_subjects" => compile_ident(r, cx, name, &items)
                .map(|l| Matcher::Ident(IdentField::TlsSubjects, l)),
            "api_callers" => compile_ident(r, cx, name, &items)
                .map(|l| Matcher::Ident(IdentField::ApiCallers, l)),
            "addresses" => compile_addresses(r, cx, &items).map(Matcher::Addresses),
            "time" => compile_time(r, cx, &items).map(Matcher::Time),
            "tables" => compile_names(r, cx, name, &items).map(Matcher::Tables),
            "functions" => compile_names(r, cx, name, &items).map(Matcher::Functions),
            "columns" => compile_columns(r, cx, &items).map(Matcher::Columns),
            "tags" => compile_tags(r, cx, &items).map(Matcher::Tags),
            "min_level" => compile_min_level(r, t).map(Matcher::MinLevel),
            _ => None,
        };
        if let Some(matcher) = matcher {
            keys.push(Key {
                name,
                matcher,
                written: written(&items),
            });
        }
    }

    if r.diags[errors_before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(Rule {
        id: Arc::from(id?.text.as_str()),
        description: description?.text,
        action: action?,
        mode,
        message,
        audit,
        file: r.src.path.clone(),
        line: header.unwrap_or(0),
        ops,
        conds,
        keys,
        mask,
        returned,
        window,
        anomaly,
    })
}

/// A key's list (or, for `min_level`, its value as a one-item list).
fn list_key(r: &mut Reader<'_>, t: &Table, name: &str) -> Option<Vec<Located>> {
    t.get(name)?;
    if name == "min_level" {
        let line = r.key_line(t, name);
        let text = t
            .get(name)
            .and_then(Item::as_value)
            .map(|v| v.to_string().trim().to_string())
            .unwrap_or_default();
        return Some(vec![Located { text, line }]);
    }
    r.string_list(t, name)
}

fn compile_ident(
    r: &mut Reader<'_>,
    cx: &RuleContext<'_>,
    key: &str,
    items: &[Located],
) -> Option<IdentList> {
    let entries = cx.expand(r, key, items)?;
    let mut list = IdentList {
        pos: Vec::new(),
        neg: Vec::new(),
    };
    for e in entries {
        let g = Glob::new(&e.text);
        if e.negated {
            list.neg.push(g);
        } else {
            list.pos.push(g);
        }
    }
    Some(list)
}

fn compile_addresses(
    r: &mut Reader<'_>,
    cx: &RuleContext<'_>,
    items: &[Located],
) -> Option<AddrList> {
    let entries = cx.expand(r, "addresses", items)?;
    let mut list = AddrList {
        pos: Vec::new(),
        neg: Vec::new(),
    };
    let mut ok = true;
    for e in entries {
        let net = e
            .text
            .parse::<IpNet>()
            .or_else(|_| e.text.parse::<IpAddr>().map(IpNet::from));
        match net {
            Ok(n) if e.negated => list.neg.push(n.trunc()),
            Ok(n) => list.pos.push(n.trunc()),
            Err(_) => {
                r.error(
                    e.line,
                    format!(
                        "bad address `{}`: use an IP address or a CIDR block such as 10.0.0.0/8 or ::1/128",
                        e.text
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(list)
}

fn compile_time(r: &mut Reader<'_>, cx: &mut RuleContext<'_>, items: &[Located]) -> Option<u32> {
    let entries = cx.expand(r, "time", items)?;
    if !RuleContext::no_negation(r, "time", &entries) {
        return None;
    }
    let mut bits = 0u32;
    let mut ok = true;
    for e in entries {
        match Window::parse(&e.text) {
            Ok(w) => {
                let i = match cx.windows.iter().position(|x| *x == w) {
                    Some(i) => i,
                    None if cx.windows.len() < MAX_WINDOWS => {
                        cx.windows.push(w);
                        cx.windows.len() - 1
                    }
                    None => {
                        r.error(
                            e.line,
                            format!("more than {MAX_WINDOWS} distinct time windows in the policy"),
                        );
                        ok = false;
                        continue;
                    }
                };
                bits |= 1 << i;
            }
            Err(msg) => {
                r.error(e.line, msg);
                ok = false;
            }
        }
    }
    ok.then_some(bits)
}

fn compile_operations(r: &mut Reader<'_>, cx: &RuleContext<'_>, items: &[Located]) -> Option<u32> {
    let entries = cx.expand(r, "operations", items)?;
    let (mut pos, mut neg, mut any_pos) = (0u32, 0u32, false);
    let mut ok = true;
    for e in entries {
        match operation_bits(&e.text) {
            Some(b) if e.negated => neg |= b,
            Some(b) => {
                pos |= b;
                any_pos = true;
            }
            None => {
                let known: Vec<&str> = Operation::ALL
                    .iter()
                    .map(|o| o.as_str())
                    .chain(OPERATION_GROUPS.iter().map(|(g, _)| *g))
                    .collect();
                r.error(e.line, unknown("operation", &e.text, &known));
                ok = false;
            }
        }
    }
    let base = if any_pos { pos } else { ALL_OPERATIONS };
    ok.then_some(base & !neg)
}

fn compile_conditions(r: &mut Reader<'_>, cx: &RuleContext<'_>, items: &[Located]) -> Option<u32> {
    let entries = cx.expand(r, "conditions", items)?;
    if !RuleContext::no_negation(r, "conditions", &entries) {
        return None;
    }
    let mut bits = 0;
    let mut ok = true;
    for e in entries {
        match conditions::by_name(&e.text) {
            Some(b) => bits |= b,
            None => {
                let known: Vec<&str> = conditions::all().map(|(_, n)| n).collect();
                r.error(e.line, unknown("condition", &e.text, &known));
                ok = false;
            }
        }
    }
    ok.then_some(bits)
}

fn compile_names(
    r: &mut Reader<'_>,
    cx: &RuleContext<'_>,
    key: &str,
    items: &[Located],
) -> Option<Vec<NamePattern>> {
    let entries = cx.expand(r, key, items)?;
    if !RuleContext::no_negation(r, key, &entries) {
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for e in entries {
        let p = NamePattern::new(&e.text);
        if p.has_empty_part() {
            r.error(
                e.line,
                format!("`{key}`: bad name `{}` (empty part)", e.text),
            );
            ok = false;
        }
        out.push(p);
    }
    ok.then_some(out)
}

fn compile_columns(
    r: &mut Reader<'_>,
    cx: &RuleContext<'_>,
    items: &[Located],
) -> Option<Vec<ColumnPattern>> {
    let names = compile_names(r, cx, "columns", items)?;
    Some(
        names
            .iter()
            .map(|n| {
                let (table, column) = n.split_column();
                ColumnPattern { table, column }
            })
            .collect(),
    )
}

fn compile_tags(r: &mut Reader<'_>, cx: &RuleContext<'_>, items: &[Located]) -> Option<Vec<Glob>> {
    let entries = cx.expand(r, "tags", items)?;
    if !RuleContext::no_negation(r, "tags", &entries) {
        return None;
    }
    Some(entries.iter().map(|e| Glob::new(&e.text)).collect())
}

fn compile_min_level(r: &mut Reader<'_>, t: &Table) -> Option<u8> {
    let (level, line) = r.integer(t, "min_level")?;
    match u8::try_from(level) {
        Ok(l @ 1..=4) => Some(l),
        _ => {
            r.error(
                line,
                format!("min_level {level} is out of range: levels are 1 (general) to 4 (core)"),
            );
            None
        }
    }
}

/// Longest client message a rule may set: it goes into every refusal.
const MAX_CLIENT_MESSAGE: usize = 1000;

/// Why `text` cannot be sent to clients in an error message, if it cannot:
/// wire protocols end fields at NUL, and control characters would let a
/// message forge lines in client logs.
fn bad_client_text(text: &str) -> Option<String> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Some(format!(
            "{} bytes is too long for a client error message (at most {MAX_CLIENT_MESSAGE})",
            text.len()
        ));
    }
    text.chars()
        .find(|c| c.is_control())
        .map(|c| format!("control character {c:?} is not allowed in a client error message"))
}
