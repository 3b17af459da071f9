//! The API scope policy: which caller of a data-sharing HTTP API may call
//! which routes, with which query parameters and body sizes, at what hours,
//! within which quotas, and which fields of the response JSON it may see
//! (allowlist, masks by path, masks by content). A directory of TOML files
//! (`[settings]`, `[[route]]`, `[[caller]]` with `[[caller.grant]]`), read
//! in name order and compiled at load time into a route trie and, per
//! granted (caller, route) pair, a [`Grant`] with its [`FieldScope`]
//! automaton. Everything here is pure: the only I/O is reading the files in
//! [`ApiPolicy::load`]; the proxy applies the result.
//!
//! See `docs/api-policy.md` for the language as the security team reads it,
//! and [`import_openapi`] for the skeleton generator.

mod compile;
mod fields;
mod openapi;
mod path;
mod route;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use danxia_detectors::pii::Kind;

use crate::error::{Diagnostic, Diagnostics, Severity};
use crate::mask::MaskRef;

pub use fields::{FieldAction, FieldScope, NodeInfo, Outside, MAX_SCOPE_STATES};
pub use openapi::{import_openapi, ApiImportError};

/// Rule ids of refusals (audit events and metric labels use them).
pub mod rules {
    pub const CALLER_UNKNOWN: &str = "api.caller-unknown";
    pub const ROUTE_NOT_GRANTED: &str = "api.route-not-granted";
    pub const QUERY_NOT_ALLOWED: &str = "api.query-not-allowed";
    pub const BODY_TOO_LARGE: &str = "api.body-too-large";
    pub const NIGHT: &str = "api.night";
    /// Decided by the proxy from [`super::ApiSettings::unknown_route`].
    pub const ROUTE_UNKNOWN: &str = "api.route-unknown";
}

/// Where the API scope files are.
#[derive(Debug, Clone, Default)]
pub struct ApiLoadOptions {
    /// Directory of scope files (`*.toml`, read in name order).
    pub dir: PathBuf,
    /// The deployment's secret for `hash` masks (kept out of policy files).
    pub mask_key: Option<Arc<[u8]>>,
}

/// What the proxy does with a request that matches no `[[route]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownRoute {
    /// Refuse with 404 (rule `api.route-unknown`).
    Deny,
    /// Forward unscoped (audited as `api.route-unknown`).
    Allow,
}

/// Quiet hours, `HH:MM-HH:MM` local time (wrapping past midnight when the
/// end is not after the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NightHours {
    pub text: Arc<str>,
    start: u16,
    end: u16,
}

impl NightHours {
    /// Whether `minute` (after local midnight) is inside the hours.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            self.start <= minute && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// What a caller's requests during its quiet hours do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NightPolicy {
    /// Refuse (403 `api.night`).
    Deny,
    /// Allow and mark the request (the proxy raises an alert).
    Alert,
    /// No difference.
    Allow,
}

impl NightPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            NightPolicy::Deny => "deny",
            NightPolicy::Alert => "alert",
            NightPolicy::Allow => "allow",
        }
    }
}

/// The `[settings]` table.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub unknown_route: UnknownRoute,
    /// Default for fields outside a grant's `fields`.
    pub outside: Outside,
    /// Default request body limit in bytes.
    pub max_body: u64,
    /// Default quiet hours.
    pub night: Option<NightHours>,
}

/// Default `max_body`: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            unknown_route: UnknownRoute::Deny,
            outside: Outside::Remove,
            max_body: DEFAULT_MAX_BODY,
            night: None,
        }
    }
}

/// Per-caller limits the proxy counts (absent = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// A rate limit (token bucket, burst of one second's worth), kept by
    /// each danxia instance on its own.
    pub requests_per_second: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub requests_per_day: Option<u64>,
    pub records_per_minute: Option<u64>,
    pub records_per_day: Option<u64>,
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: Arc<str>,
    /// Upper-case method, or `*` for any.
    pub method: Arc<str>,
    /// The template as written.
    pub path: Arc<str>,
    /// Query parameters the route accepts at all.
    pub query: Vec<Arc<str>>,
    /// `records` as written (`None`: the default, `$[*]` for a top-level
    /// array, else `$`).
    pub records: Option<Arc<str>>,
    pub sensitive: bool,
    pub description: Option<Arc<str>>,
    pub(crate) template: route::Template,
    pub(crate) records_c: fields::Records,
    pub(crate) location: Arc<str>,
}

/// One `[[caller]]`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: Arc<str>,
    pub name: Option<Arc<str>>,
    pub quota: Quota,
    /// What requests during `night_hours` do.
    pub night: NightPolicy,
    /// The caller's quiet hours (its own `night_hours`, else
    /// `settings.night`).
    pub night_hours: Option<NightHours>,
    /// Alert at this behaviour score.
    pub anomaly: Option<f64>,
    /// Refuse at this behaviour score.
    pub block_anomaly: Option<f64>,
    /// Request body limit in bytes (the caller's, else `settings.max_body`).
    pub max_body: u64,
    pub(crate) grants: Vec<GrantSpec>,
    pub(crate) location: Arc<str>,
}

/// A `[[caller.grant]]` as written (compiled per route into [`Grant`]s).
#[derive(Debug, Clone)]
pub(crate) struct GrantSpec {
    pub(crate) id: Arc<str>,
    pub(crate) routes: Vec<crate::glob::Glob>,
    pub(crate) query: Option<Vec<Arc<str>>>,
    pub(crate) fields: Option<Vec<path::JsonPath>>,
    pub(crate) outside: Option<Outside>,
    pub(crate) masks: Vec<(path::JsonPath, MaskRef)>,
    pub(crate) mask_tags: Vec<(Kind, MaskRef)>,
    pub(crate) line: Option<usize>,
}

/// The deciding grant of one caller on one route, compiled at load time.
#[derive(Debug)]
pub struct Grant {
    /// `caller.grant[N]`, e.g. `dept-health.grant[0]`.
    pub id: Arc<str>,
    pub caller: Arc<str>,
    pub route: Arc<str>,
    /// The response field scope.
    pub fields: FieldScope,
    /// `fields` as written (`None`: all fields).
    pub field_paths: Option<Vec<Arc<str>>>,
    /// `mask` paths as written, with their strategies.
    pub masks: Vec<(Arc<str>, MaskRef)>,
    /// Query parameters the caller may use on this route (`None`: all the
    /// route accepts).
    pub query: Option<Vec<Arc<str>>>,
    pub outside: Outside,
    mask_tags: Vec<(Kind, MaskRef)>,
}

impl Grant {
    /// Whether the grant changes response bodies at all. `false` (no
    /// `fields`, no `mask`, no `mask_tags`): the proxy may pass the body
    /// through byte for byte, still counting records.
    pub fn restricts(&self) -> bool {
        self.field_paths.is_some() || !self.masks.is_empty() || !self.mask_tags.is_empty()
    }

    /// Content masking: kinds the PII scanner recognises in any kept string
    /// value, and their strategies.
    pub fn mask_tags(&self) -> &[(Kind, MaskRef)] {
        &self.mask_tags
    }

    /// One line per setting, for explanations.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!("grant {} on route {}", self.id, self.route)];
        match &self.field_paths {
            None => out.push("fields: all".into()),
            Some(f) => {
                let f: Vec<&str> = f.iter().map(|s| &**s).collect();
                out.push(format!("fields: {}", f.join(", ")));
                out.push(match &self.outside {
                    Outside::Remove => "outside fields: removed".into(),
                    Outside::Mask(m) => format!("outside fields: masked {}", m.spec),
                });
            }
        }
        for (p, m) in &self.masks {
            out.push(format!("mask {p} → {}", m.spec));
        }
        for (k, m) in &self.mask_tags {
            out.push(format!("mask values of {k} → {}", m.spec));
        }
        if let Some(q) = &self.query {
            let q: Vec<&str> = q.iter().map(|s| &**s).collect();
            out.push(format!("query: {}", q.join(", ")));
        }
        out
    }
}

/// A request's route and its `{param}` values (percent-decoded).
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    pub route: &'a Route,
    pub params: Vec<(&'a str, String)>,
    pub(crate) index: usize,
}

impl RouteMatch<'_> {
    /// The value of `{name}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the proxy does with a request before forwarding it.
#[derive(Debug, Clone)]
pub enum Authorisation {
    Allowed {
        grant: Arc<Grant>,
        /// During quiet hours with `night = "alert"`: raise an alert.
        night: bool,
    },
    Refused {
        /// HTTP status of the problem response.
        status: u16,
        /// Rule id (see [`rules`]).
        rule: &'static str,
        /// Problem title.
        title: &'static str,
        /// Problem detail for the caller: what was refused and why.
        detail: String,
    },
}

impl Authorisation {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Authorisation::Allowed { .. })
    }
}

/// A loaded, validated, compiled API scope policy. Immutable; a reload
/// builds a new one and the proxy swaps it in whole.
pub struct ApiPolicy {
    version: u64,
    settings: ApiSettings,
    routes: Vec<Route>,
    router: route::Router,
    callers: Vec<Caller>,
    caller_index: HashMap<Arc<str>, usize>,
    /// Per caller, per route: the deciding grant.
    grants: Vec<Vec<Option<Arc<Grant>>>>,
    warnings: Vec<Diagnostic>,
}

impl std::fmt::Debug for ApiPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiPolicy")
            .field("version", &self.version)
            .field("routes", &self.routes.len())
            .field("callers", &self.callers.len())
            .finish_non_exhaustive()
    }
}

/// Checking needs no secret: a stand-in key lets `hash` strategies be
/// validated (loading for real still requires the key).
const CHECK_KEY: &[u8] = b"danxia check: stand-in masking key";

impl ApiPolicy {
    /// Reads, validates and compiles the scope files `opts` names. Any
    /// error rejects the whole policy (the diagnostics then hold errors and
    /// warnings); warnings of a loaded policy are in [`ApiPolicy::warnings`].
    pub fn load(opts: &ApiLoadOptions) -> Result<ApiPolicy, Diagnostics> {
        let (compiled, diags) = compile::compile(opts);
        if diags.iter().any(|d| d.severity == Severity::Error) {
            return Err(Diagnostics(diags));
        }
        let c = compiled.ok_or_else(|| Diagnostics(diags.clone()))?;
        let caller_index = c
            .callers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Ok(ApiPolicy {
            version: c.version,
            settings: c.settings,
            routes: c.routes,
            router: c.router,
            callers: c.callers,
            caller_index,
            grants: c.grants,
            warnings: diags,
        })
    }

    /// Everything [`ApiPolicy::load`] would report, errors and warnings.
    pub fn check(opts: &ApiLoadOptions) -> Vec<Diagnostic> {
        if opts.mask_key.is_some() {
            return compile::compile(opts).1;
        }
        let mut opts = opts.clone();
        opts.mask_key = Some(Arc::from(CHECK_KEY));
        compile::compile(&opts).1
    }

    /// Hash of the files' names and contents: equal files, equal version
    /// (audit events carry it).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.settings
    }

    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The route for `method` and the raw request `path` (without the
    /// query; percent-encoded as received). Segments are decoded one by
    /// one; `//`, `.`, `..` and encoded `/` match nothing. When several
    /// routes match, the one with the most literal segments wins, then a
    /// specific method over `*` (other ties are refused at load time).
    pub fn route<'a>(&'a self, method: &str, path: &str) -> Option<RouteMatch<'a>> {
        let (index, segs) = self.router.find(method, path)?;
        let route = &self.routes[index];
        let params = route
            .template
            .segs
            .iter()
            .zip(segs)
            .filter_map(|(t, v)| match t {
                route::Seg::Param(name) => Some((&**name, v.into_owned())),
                route::Seg::Lit(_) => None,
            })
            .collect();
        Some(RouteMatch {
            route,
            params,
            index,
        })
    }

    pub fn caller(&self, id: &str) -> Option<&Caller> {
        self.caller_index.get(id).map(|&i| &self.callers[i])
    }

    pub fn callers(&self) -> impl Iterator<Item = &Caller> {
        self.callers.iter()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The deciding grant of `caller` on the matched route, if any.
    pub fn grant(&self, caller: &str, m: &RouteMatch<'_>) -> Option<&Arc<Grant>> {
        let &ci = self.caller_index.get(caller)?;
        self.grants[ci].get(m.index)?.as_ref()
    }

    /// Everything decided before forwarding a request: `query` = the
    /// request's query parameter names, `body_len` = its Content-Length if
    /// known, `local_minute_of_day` for quiet hours. Checks, in order:
    /// caller known, route granted, query parameters, body size, night.
    pub fn authorise(
        &self,
        caller: &str,
        m: &RouteMatch<'_>,
        query: &[&str],
        body_len: Option<u64>,
        local_minute_of_day: u16,
    ) -> Authorisation {
        let Some(&ci) = self.caller_index.get(caller) else {
            return refused(
                403,
                rules::CALLER_UNKNOWN,
                "Caller not authorised",
                format!("caller `{caller}` has no grant in the API scope policy"),
            );
        };
        let c = &self.callers[ci];
        let Some(grant) = self.grants[ci].get(m.index).and_then(Option::as_ref) else {
            return refused(
                403,
                rules::ROUTE_NOT_GRANTED,
                "Route not granted",
                format!(
                    "caller `{}` is not granted route `{}` ({} {})",
                    c.id, m.route.id, m.route.method, m.route.path
                ),
            );
        };
        for &q in query {
            let accepted = m.route.query.iter().any(|a| **a == *q);
            let granted = grant
                .query
                .as_ref()
                .is_none_or(|g| g.iter().any(|a| **a == *q));
            if !(accepted && granted) {
                let allowed: Vec<&str> = match &grant.query {
                    Some(g) => g.iter().map(|s| &**s).collect(),
                    None => m.route.query.iter().map(|s| &**s).collect(),
                };
                let allowed = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                let why = if accepted {
                    "is not granted to this caller"
                } else {
                    "is not accepted by this route"
                };
                return refused(
                    400,
                    rules::QUERY_NOT_ALLOWED,
                    "Query parameter not allowed",
                    format!(
                        "query parameter `{q}` {why} (route `{}`; allowed: {allowed})",
                        m.route.id
                    ),
                );
            }
        }
        if let Some(len) = body_len {
            if len > c.max_body {
                return refused(
                    413,
                    rules::BODY_TOO_LARGE,
                    "Request body too large",
                    format!(
                        "request body of {len} bytes is over the limit of {} bytes",
                        c.max_body
                    ),
                );
            }
        }
        let in_night = c
            .night_hours
            .as_ref()
            .is_some_and(|h| h.contains(local_minute_of_day));
        let night = match (in_night, c.night) {
            (true, NightPolicy::Deny) => {
                let hours = c.night_hours.as_ref().map(|h| &*h.text).unwrap_or("");
                return refused(
                    403,
                    rules::NIGHT,
                    "Outside permitted hours",
                    format!("caller `{}` may not call the API during {hours}", c.id),
                );
            }
            (true, NightPolicy::Alert) => true,
            _ => false,
        };
        Authorisation::Allowed {
            grant: grant.clone(),
            night,
        }
    }

    /// Lines saying how a request would be decided and why (for `danxia
    /// explain` and the admin API).
    pub fn explain(
        &self,
        caller: &str,
        method: &str,
        path: &str,
        query: &[&str],
        body_len: Option<u64>,
        local_minute_of_day: u16,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let Some(m) = self.route(method, path) else {
            out.push(format!(
                "{method} {path}: no route matches; unknown_route = {} ({})",
                match self.settings.unknown_route {
                    UnknownRoute::Deny => "deny → 404",
                    UnknownRoute::Allow => "allow → forwarded unscoped",
                },
                rules::ROUTE_UNKNOWN
            ));
            return out;
        };
        out.push(format!(
            "{method} {path}: route `{}` ({} {}, {})",
            m.route.id, m.route.method, m.route.path, m.route.location
        ));
        for (n, v) in &m.params {
            out.push(format!("  {{{n}}} = {v:?}"));
        }
        match self.authorise(caller, &m, query, body_len, local_minute_of_day) {
            Authorisation::Refused {
                status,
                rule,
                detail,
                ..
            } => out.push(format!("refused {status} ({rule}): {detail}")),
            Authorisation::Allowed { grant, night } => {
                out.push(format!(
                    "allowed by {}{}",
                    grant.id,
                    if night { " (quiet hours: alert)" } else { "" }
                ));
                out.extend(
                    grant
                        .describe()
                        .into_iter()
                        .skip(1)
                        .map(|l| format!("  {l}")),
                );
            }
        }
        out
    }
}

fn refused(status: u16, rule: &'static str, title: &'static str, detail: String) -> Authorisation {
    Authorisation::Refused {
        status,
        rule,
        title,
        detail,
    }
}
