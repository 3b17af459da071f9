//! Route templates (`/api/v1/persons/{id}`) and the router that matches a
//! request's method and raw path to one `[[route]]`. Owns path
//! normalisation: segments are percent-decoded one by one, and a path with
//! an empty segment (`//`), a `.` or `..` segment, or a decoded segment that
//! holds `/`, `\` or NUL matches nothing, so `/api/v1/x/../persons` cannot
//! reach a route its text does not name. Never allocates per route: the
//! templates are compiled into a segment trie walked once per request.

use std::borrow::Cow;
use std::collections::HashMap;

use percent_encoding::percent_decode_str;

/// Most segments a request path may have to be matched at all (routes are
/// a few segments deep; the walk is recursive).
pub(crate) const MAX_SEGMENTS: usize = 64;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Lit(Box<str>),
    Param(Box<str>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) segs: Vec<Seg>,
}

impl Template {
    /// Parses `/a/{b}/c`; the error says what is wrong and what is expected.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let hint = "expected `/literal/{param}/…`, e.g. `/api/v1/persons/{id}`";
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path `{text}` must start with `/`; {hint}"));
        };
        let mut segs = Vec::new();
        if rest.is_empty() {
            return Ok(Template { segs });
        }
        for s in rest.split('/') {
            if s.is_empty() {
                return Err(format!(
                    "path `{text}` has an empty segment (`//` or a trailing `/`); {hint}"
                ));
            }
            if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "path `{text}`: parameter `{s}` must be `{{name}}` with letters, digits and `_`; {hint}"
                    ));
                }
                if segs
                    .iter()
                    .any(|x| matches!(x, Seg::Param(n) if **n == *name))
                {
                    return Err(format!(
                        "path `{text}`: parameter `{{{name}}}` appears twice"
                    ));
                }
                segs.push(Seg::Param(name.into()));
            } else if s.contains(['{', '}']) {
                return Err(format!(
                    "path `{text}`: segment `{s}` mixes text and a parameter; a parameter is a whole segment; {hint}"
                ));
            } else if s == "." || s == ".." || s.contains(['?', '#']) {
                return Err(format!(
                    "path `{text}`: segment `{s}` is not allowed; {hint}"
                ));
            } else {
                let decoded = percent_decode_str(s).decode_utf8().map_err(|_| {
                    format!("path `{text}`: segment `{s}` is not UTF-8 once decoded")
                })?;
                segs.push(Seg::Lit(decoded.into()));
            }
        }
        Ok(Template { segs })
    }

    pub(crate) fn literal_count(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count()
    }

    /// Whether some path matches both templates.
    pub(crate) fn overlaps(&self, other: &Template) -> bool {
        self.segs.len() == other.segs.len()
            && self
                .segs
                .iter()
                .zip(&other.segs)
                .all(|(a, b)| match (a, b) {
                    (Seg::Lit(x), Seg::Lit(y)) => x == y,
                    _ => true,
                })
    }
}

/// Methods overlap when equal or either is `*`.
pub(crate) fn methods_overlap(a: &str, b: &str) -> bool {
    a == "*" || b == "*" || a == b
}

#[derive(Debug, Default)]
struct Node {
    lits: HashMap<Box<str>, usize>,
    param: Option<usize>,
    /// Routes ending here: (method, route index).
    ends: Vec<(Box<str>, usize)>,
}

/// The compiled router.
#[derive(Debug, Default)]
pub(crate) struct Router {
    nodes: Vec<Node>,
    /// Per route: literal segments and whether its method is specific
    /// (the tie-breakers).
    rank: Vec<(usize, bool)>,
}

impl Router {
    pub(crate) fn new(routes: &[(&str, &Template)]) -> Router {
        let mut r = Router {
            nodes: vec![Node::default()],
            rank: Vec::with_capacity(routes.len()),
        };
        for (idx, (method, t)) in routes.iter().enumerate() {
            let mut n = 0;
            for s in &t.segs {
                n = match s {
                    Seg::Lit(l) => match r.nodes[n].lits.get(l) {
                        Some(&c) => c,
                        None => {
                            let c = r.push();
                            r.nodes[n].lits.insert(l.clone(), c);
                            c
                        }
                    },
                    Seg::Param(_) => match r.nodes[n].param {
                        Some(c) => c,
                        None => {
                            let c = r.push();
                            r.nodes[n].param = Some(c);
                            c
                        }
                    },
                };
            }
            r.nodes[n].ends.push(((*method).into(), idx));
            r.rank.push((t.literal_count(), *method != "*"));
        }
        r
    }

    fn push(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// The best route for `method` and raw `path` (no query), with the
    /// decoded segments for the caller to pick parameters from.
    pub(crate) fn find<'p>(
        &self,
        method: &str,
        path: &'p str,
    ) -> Option<(usize, Vec<Cow<'p, str>>)> {
        let segs = split(path)?;
        let mut best: Option<usize> = None;
        self.walk(0, &segs, method, &mut best);
        best.map(|b| (b, segs))
    }

    fn walk(&self, n: usize, segs: &[Cow<'_, str>], method: &str, best: &mut Option<usize>) {
        let node = &self.nodes[n];
        let Some((first, rest)) = segs.split_first() else {
            for (m, idx) in &node.ends {
                if &**m == "*" || **m == *method {
                    let better = match *best {
                        None => true,
                        Some(b) => self.rank[*idx] > self.rank[b],
                    };
                    if better {
                        *best = Some(*idx);
                    }
                }
            }
            return;
        };
        if let Some(&c) = node.lits.get(&**first) {
            self.walk(c, rest, method, best);
        }
        if let Some(c) = node.param {
            self.walk(c, rest, method, best);
        }
    }
}

/// Splits and decodes a raw request path; `None` when it must match no
/// route (see the module docs).
pub(crate) fn split(path: &str) -> Option<Vec<Cow<'_, str>>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for s in rest.split('/') {
        if out.len() == MAX_SEGMENTS {
            return None;
        }
        let d = percent_decode_str(s).decode_utf8().ok()?;
        if d.is_empty() || d == "." || d == ".." || d.contains(['/', '\\', '\0']) {
            return None;
        }
        out.push(d);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let t: Vec<(&str, Template)> = routes
            .iter()
            .map(|(m, p)| (*m, Template::parse(p).unwrap()))
            .collect();
        let refs: Vec<(&str, &Template)> = t.iter().map(|(m, t)| (*m, t)).collect();
        Router::new(&refs)
    }

    #[test]
    fn most_literal_route_wins() {
        let r = router(&[
            ("GET", "/api/v1/persons/{id}"),
            ("GET", "/api/v1/persons/export"),
            ("*", "/api/v1/{x}/{y}"),
            ("GET", "/"),
        ]);
        let find = |m: &str, p: &str| r.find(m, p).map(|(i, _)| i);
        assert_eq!(find("GET", "/api/v1/persons/12"), Some(0));
        assert_eq!(find("GET", "/api/v1/persons/export"), Some(1));
        assert_eq!(find("POST", "/api/v1/persons/export"), Some(2));
        assert_eq!(find("GET", "/"), Some(3));
        assert_eq!(find("get", "/api/v1/persons/12"), Some(2));
        assert_eq!(find("GET", "/api/v1/persons/%65xport"), Some(1));
        let (_, segs) = r.find("GET", "/api/v1/persons/a%20b").unwrap();
        assert_eq!(segs[3], "a b");
    }

    #[test]
    fn tricky_paths_match_nothing() {
        let r = router(&[("GET", "/api/v1/persons/{id}"), ("GET", "/api/v1/persons")]);
        for p in [
            "/api/v1/persons/",
            "/api//v1/persons",
            "/api/v1/x/../persons",
            "/api/v1/persons/%2e%2e",
            "/api/v1/persons/a%2Fb",
            "/api/v1/persons/%ff",
            "api/v1/persons",
            "/api/v1/persons/1/2",
            "/api/v1/persons/.",
        ] {
            assert!(r.find("GET", p).is_none(), "{p}");
        }
    }

    #[test]
    fn bad_templates_are_rejected() {
        for t in [
            "api",
            "/a//b",
            "/a/",
            "/a/{}",
            "/a/{x y}",
            "/a/x{y}",
            "/a/{i}/{i}",
            "/a/..",
        ] {
            assert!(Template::parse(t).is_err(), "{t}");
        }
        assert!(Template::parse("/").unwrap().segs.is_empty());
    }

    #[test]
    fn overlap() {
        let t = |s| Template::parse(s).unwrap();
        assert!(t("/a/{x}").overlaps(&t("/{y}/b")));
        assert!(!t("/a/{x}").overlaps(&t("/b/{y}")));
        assert!(!t("/a").overlaps(&t("/a/b")));
    }
}
