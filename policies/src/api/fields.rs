//! The field scope of one grant on one route: which members of a response
//! JSON document a caller may see, which are masked, and which nodes are
//! records. Compiled at load time into a deterministic automaton over the
//! document's path (subset construction over the NFA of the grant's
//! `fields`, `mask` and the route's `records` paths), so the streaming
//! rewriter pays one table look-up per member or element and never
//! allocates. Owns the semantics of `fields` / `outside` / `mask` /
//! `records`; never sees a document.
//!
//! Semantics, per node of the document:
//! - *allowed*: its path matches a `fields` path, or an ancestor's does
//!   (without `fields`, everything is allowed);
//! - *ancestor*: not allowed, but some `fields` path could still match
//!   below it: kept as a container ([`FieldAction::KeepIfContainer`]);
//! - *outside*: neither: removed (`outside = "remove"`), or kept with the
//!   outside mask applied to every scalar below it.
//!
//! A `mask` path masks the node it matches and its whole subtree; when
//! several match, the first in file order wins. An explicit mask beats the
//! outside mask.
//!
//! The automaton's alphabet is the literal keys the paths mention, "any
//! other key" and "array element". Once a node is allowed, the `fields`
//! paths are dropped from its state, and so are the mask paths that could
//! only lose to the mask already inherited: a subtree nothing more can
//! change reaches a state with no live paths, which loops to itself, so
//! deep or removed subtrees cost nothing more.

use std::collections::HashMap;

use super::path::{step_on, JsonPath, Step, Symbol};
use crate::mask::MaskRef;

/// Most automaton states one field scope may have: the subset
/// construction is exponential in the worst case (many `..name` paths),
/// and a scope that big is a policy mistake, not a need.
pub const MAX_SCOPE_STATES: usize = 10_000;

/// What the rewriter does with one object member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldAction {
    /// Emit the member (and walk into it if it is a container).
    Keep,
    /// Drop the member and its whole value.
    Remove,
    /// Emit the member if its value is an object or array (something below
    /// it may be allowed); drop it if its value is a scalar.
    KeepIfContainer,
}

/// Everything known about a node in a given automaton state.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    /// What to do with the node itself (for array elements too: an element
    /// of an ancestor array can be outside, e.g. `fields = ["$.a.b"]` on
    /// `{"a": [1]}`).
    pub action: FieldAction,
    /// The node is in scope (matched by `fields` or below such a node).
    pub allowed: bool,
    /// The node is out of scope but kept because `outside` is a mask
    /// strategy (its scalars get [`NodeInfo::mask`]).
    pub outside: bool,
    /// The node is one record of the response (`records` path). A node that
    /// is removed is never a record: records count what was delivered.
    pub is_record: bool,
    /// Strategy for every scalar at this node (explicit `mask`, else the
    /// outside mask for outside nodes).
    pub mask: Option<&'a MaskRef>,
    /// Nothing below this node is removed, masked or counted, and the node
    /// itself is not masked: once it has counted the node itself (see
    /// `is_record`), the rewriter may copy its value through verbatim.
    pub passthrough: bool,
}

/// Sentinel for "no explicit mask" in compact state info.
const NO_MASK: u16 = u16::MAX;

#[derive(Debug, Clone, Copy)]
struct Info {
    action: FieldAction,
    allowed: bool,
    outside: bool,
    is_record: bool,
    mask: u16,
    passthrough: bool,
}

#[derive(Debug, Clone)]
struct Row {
    /// Literal keys whose transition differs from `other`, sorted.
    keys: Box<[(Box<str>, u32)]>,
    other: u32,
    index: u32,
    info: Info,
}

/// A compiled field scope. Immutable and `Send + Sync`; states are `u32`
/// ids valid only for the scope that produced them.
#[derive(Debug, Clone)]
pub struct FieldScope {
    rows: Box<[Row]>,
    /// Explicit masks in file order, then the outside mask (if any).
    masks: Box<[MaskRef]>,
    /// `records` was not given: a top-level array's elements are records
    /// (compiled in as `$[*]`), else the root is one record.
    default_records: bool,
    /// `records = "none"`: nothing is counted.
    no_records: bool,
    /// The grant has a `fields` allowlist.
    has_fields: bool,
}

/// What happens outside `fields`.
#[derive(Debug, Clone)]
pub enum Outside {
    Remove,
    Mask(MaskRef),
}

/// Where a route's records are.
#[derive(Debug, Clone)]
pub(crate) enum Records {
    /// Not given: `$[*]` for a top-level array, else `$`.
    Default,
    /// `records = "none"`.
    None,
    Path(JsonPath),
}

/// What a scope is compiled from.
pub(crate) struct ScopeSpec<'a> {
    pub(crate) fields: Option<&'a [JsonPath]>,
    pub(crate) masks: &'a [(JsonPath, MaskRef)],
    pub(crate) records: &'a Records,
    pub(crate) outside: &'a Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Field,
    Mask(u16),
    Record,
}

/// A DFA state before numbering: the live NFA positions (pattern << 8 |
/// step) and what the node inherited.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    positions: Vec<u32>,
    allowed: bool,
    mask: u16,
    record: bool,
}

struct Builder<'a> {
    patterns: Vec<(&'a [Step], Role)>,
    remove_outside: bool,
    has_fields: bool,
}

/// Position encoding: the pattern index in the high bits, the step in the
/// low 8 (paths have at most [`super::path::MAX_PATH_STEPS`] steps).
const POS_BITS: u32 = 8;

impl Builder<'_> {
    fn pattern(&self, pos: u32) -> (&[Step], Role, usize) {
        let (steps, role) = self.patterns[(pos >> POS_BITS) as usize];
        (steps, role, (pos & ((1 << POS_BITS) - 1)) as usize)
    }

    /// Turns raw reached positions into a canonical state key.
    fn close(&self, mut positions: Vec<u32>, allowed: bool, mask: u16) -> Key {
        let mut allowed = allowed;
        let mut mask = mask;
        let mut record = false;
        for &p in &positions {
            let (steps, role, i) = self.pattern(p);
            if i == steps.len() {
                match role {
                    Role::Field => allowed = true,
                    Role::Mask(m) => mask = mask.min(m),
                    Role::Record => record = true,
                }
            }
        }
        positions.retain(|&p| {
            let (steps, role, i) = self.pattern(p);
            i < steps.len()
                && match role {
                    Role::Field => !allowed,
                    Role::Mask(m) => m < mask,
                    Role::Record => true,
                }
        });
        positions.sort_unstable();
        positions.dedup();
        let ancestor = positions.iter().any(|&p| self.pattern(p).1 == Role::Field);
        if self.has_fields && !allowed && !ancestor && self.remove_outside {
            // Removed: the rewriter never walks below, and nothing here is
            // delivered, so all removed nodes share one dead state.
            return Key {
                positions: Vec::new(),
                allowed: false,
                mask: NO_MASK,
                record: false,
            };
        }
        Key {
            positions,
            allowed,
            mask,
            record,
        }
    }

    fn step(&self, key: &Key, sym: Symbol<'_>) -> Key {
        let mut next = Vec::with_capacity(key.positions.len());
        for &p in &key.positions {
            let (steps, _, i) = self.pattern(p);
            let (stay, advance) = step_on(&steps[i], sym);
            if stay {
                next.push(p);
            }
            if advance {
                next.push(p + 1);
            }
        }
        self.close(next, key.allowed, key.mask)
    }

    fn info(&self, key: &Key, outside_mask: Option<u16>) -> Info {
        let ancestor = key
            .positions
            .iter()
            .any(|&p| self.pattern(p).1 == Role::Field);
        let (action, outside) = if key.allowed {
            (FieldAction::Keep, false)
        } else if self.remove_outside {
            if ancestor {
                (FieldAction::KeepIfContainer, false)
            } else {
                (FieldAction::Remove, false)
            }
        } else {
            (FieldAction::Keep, true)
        };
        let mask = if key.mask != NO_MASK {
            key.mask
        } else if outside {
            outside_mask.unwrap_or(NO_MASK)
        } else {
            NO_MASK
        };
        Info {
            action,
            allowed: key.allowed,
            outside,
            is_record: key.record && action != FieldAction::Remove,
            mask,
            passthrough: key.positions.is_empty() && key.allowed && key.mask == NO_MASK,
        }
    }
}

impl FieldScope {
    /// Compiles a scope; the error says how many states were needed.
    pub(crate) fn build(spec: &ScopeSpec<'_>, max_states: usize) -> Result<FieldScope, String> {
        let mut patterns: Vec<(&[Step], Role)> = Vec::new();
        if let Some(fields) = spec.fields {
            patterns.extend(fields.iter().map(|p| (&p.steps[..], Role::Field)));
        }
        let mut masks: Vec<MaskRef> = Vec::new();
        for (i, (p, m)) in spec.masks.iter().enumerate() {
            patterns.push((&p.steps[..], Role::Mask(i as u16)));
            masks.push(m.clone());
        }
        if masks.len() >= usize::from(NO_MASK) - 1 {
            return Err("too many mask paths".into());
        }
        let default_records_path;
        let (default_records, no_records) = match spec.records {
            Records::Default => {
                default_records_path = [Step::AnyIndex];
                patterns.push((&default_records_path[..], Role::Record));
                (true, false)
            }
            Records::None => (false, true),
            Records::Path(p) => {
                patterns.push((&p.steps[..], Role::Record));
                (false, false)
            }
        };
        let outside_mask = match spec.outside {
            Outside::Remove => None,
            Outside::Mask(m) => {
                masks.push(m.clone());
                Some((masks.len() - 1) as u16)
            }
        };
        let b = Builder {
            patterns,
            remove_outside: matches!(spec.outside, Outside::Remove),
            has_fields: spec.fields.is_some(),
        };
        let root_positions: Vec<u32> = (0..b.patterns.len() as u32)
            .map(|i| i << POS_BITS)
            .collect();
        let root = b.close(root_positions, spec.fields.is_none(), NO_MASK);

        let mut ids: HashMap<Key, u32> = HashMap::new();
        let mut keys: Vec<Key> = Vec::new();
        ids.insert(root.clone(), 0);
        keys.push(root);
        let mut rows: Vec<Row> = Vec::new();
        let intern = |k: Key,
                      ids: &mut HashMap<Key, u32>,
                      keys: &mut Vec<Key>|
         -> Result<u32, String> {
            if let Some(&id) = ids.get(&k) {
                return Ok(id);
            }
            if keys.len() >= max_states {
                return Err(format!(
                    "its field scope needs more than {max_states} automaton states; use fewer `..name` paths or more specific ones"
                ));
            }
            let id = keys.len() as u32;
            ids.insert(k.clone(), id);
            keys.push(k);
            Ok(id)
        };
        let mut n = 0;
        while n < keys.len() {
            let key = keys[n].clone();
            let other = intern(b.step(&key, Symbol::OtherKey), &mut ids, &mut keys)?;
            let index = intern(b.step(&key, Symbol::Index), &mut ids, &mut keys)?;
            let mut literals: Vec<&str> = Vec::new();
            for &p in &key.positions {
                let (steps, _, i) = b.pattern(p);
                match &steps[i] {
                    Step::Key(k) | Step::Descend(Some(k)) => literals.push(k),
                    _ => {}
                }
            }
            literals.sort_unstable();
            literals.dedup();
            let mut lit = Vec::new();
            for k in literals {
                let t = intern(b.step(&key, Symbol::Key(k)), &mut ids, &mut keys)?;
                if t != other {
                    lit.push((Box::<str>::from(k), t));
                }
            }
            rows.push(Row {
                keys: lit.into_boxed_slice(),
                other,
                index,
                info: b.info(&key, outside_mask),
            });
            n += 1;
        }
        Ok(FieldScope {
            rows: rows.into_boxed_slice(),
            masks: masks.into_boxed_slice(),
            default_records,
            no_records,
            has_fields: spec.fields.is_some(),
        })
    }

    /// The root node's state.
    #[inline]
    pub fn root(&self) -> u32 {
        0
    }

    /// Member `key` (unescaped) of an object whose state is `parent`: what
    /// to do with it and its state.
    #[inline]
    pub fn member(&self, parent: u32, key: &str) -> (FieldAction, u32) {
        let row = &self.rows[parent as usize];
        let next = if row.keys.is_empty() {
            row.other
        } else {
            match row.keys.binary_search_by(|(k, _)| (**k).cmp(key)) {
                Ok(i) => row.keys[i].1,
                Err(_) => row.other,
            }
        };
        (self.rows[next as usize].info.action, next)
    }

    /// Element `index` of an array whose state is `parent`. Every element
    /// of an array is in the same state (paths select `[*]`, not indexes);
    /// [`FieldScope::node`]'s `action` says whether it is kept.
    #[inline]
    pub fn element(&self, parent: u32, _index: u64) -> u32 {
        self.rows[parent as usize].index
    }

    /// What is known about a node in `state`.
    #[inline]
    pub fn node(&self, state: u32) -> NodeInfo<'_> {
        let i = self.rows[state as usize].info;
        NodeInfo {
            action: i.action,
            allowed: i.allowed,
            outside: i.outside,
            is_record: i.is_record,
            mask: self.masks.get(usize::from(i.mask)),
            passthrough: i.passthrough,
        }
    }

    /// Whether the root is one record, given whether it is an array (the
    /// default `records` depends on it).
    pub fn root_is_record(&self, root_is_array: bool) -> bool {
        if self.default_records {
            !root_is_array
        } else {
            self.rows[0].info.is_record
        }
    }

    /// Whether records are counted at all (`records = "none"` says not).
    pub fn counts_records(&self) -> bool {
        !self.no_records
    }

    /// The grant has a `fields` allowlist.
    pub fn has_fields(&self) -> bool {
        self.has_fields
    }

    /// Number of automaton states (for tests and `danxia check`).
    pub fn state_count(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use danxia_detectors::mask::Strategy;

    fn mref(spec: &str) -> MaskRef {
        MaskRef {
            rule_id: Arc::from("t.grant[0]"),
            spec: Arc::from(spec),
            strategy: Arc::new(Strategy::parse(spec, None).unwrap()),
        }
    }

    fn paths(v: &[&str]) -> Vec<JsonPath> {
        v.iter().map(|p| JsonPath::parse(p).unwrap()).collect()
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Seg {
        K(&'static str),
        I,
    }

    fn sym(s: Seg) -> Symbol<'static> {
        match s {
            Seg::K(k) => Symbol::Key(k),
            Seg::I => Symbol::Index,
        }
    }

    /// Reference: does `steps` match `path` exactly? Plain backtracking.
    fn matches(steps: &[Step], path: &[Seg]) -> bool {
        let Some(first) = steps.first() else {
            return path.is_empty();
        };
        let rest = &steps[1..];
        match first {
            Step::Descend(name) => (0..path.len()).any(|i| {
                matches!(path[i], Seg::K(k) if name.as_deref().is_none_or(|n| n == k))
                    && matches(rest, &path[i + 1..])
            }),
            _ => {
                let Some(&seg) = path.first() else {
                    return false;
                };
                step_on(first, sym(seg)).1 && matches(rest, &path[1..])
            }
        }
    }

    /// Reference: could `steps` still match some extension of `path`?
    fn could_continue(steps: &[Step], path: &[Seg]) -> bool {
        let Some(first) = steps.first() else {
            return false;
        };
        if path.is_empty() {
            return true;
        }
        let rest = &steps[1..];
        match first {
            // Inside a descent the path can always go on deeper.
            Step::Descend(_) => true,
            _ => step_on(first, sym(path[0])).1 && could_continue(rest, &path[1..]),
        }
    }

    struct Expect {
        action: FieldAction,
        mask: Option<String>,
        record: bool,
    }

    fn reference(
        fields: Option<&[JsonPath]>,
        masks: &[(JsonPath, MaskRef)],
        records: &JsonPath,
        outside: &Outside,
        path: &[Seg],
    ) -> Expect {
        let allowed = match fields {
            None => true,
            Some(f) => (0..=path.len()).any(|n| f.iter().any(|p| matches(&p.steps, &path[..n]))),
        };
        let ancestor =
            !allowed && fields.is_some_and(|f| f.iter().any(|p| could_continue(&p.steps, path)));
        let remove = matches!(outside, Outside::Remove);
        let action = if allowed {
            FieldAction::Keep
        } else if remove && ancestor {
            FieldAction::KeepIfContainer
        } else if remove {
            FieldAction::Remove
        } else {
            FieldAction::Keep
        };
        let explicit = masks
            .iter()
            .find(|(p, _)| (0..=path.len()).any(|n| matches(&p.steps, &path[..n])))
            .map(|(_, m)| m.spec.to_string());
        let mask = explicit.or_else(|| match outside {
            Outside::Mask(m) if !allowed => Some(m.spec.to_string()),
            _ => None,
        });
        Expect {
            action,
            mask,
            record: matches(&records.steps, path) && action != FieldAction::Remove,
        }
    }

    /// xorshift64*: deterministic pseudo-random numbers for generated cases.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const NAMES: [&str; 3] = ["a", "b", "c"];
    const DOC_KEYS: [&str; 4] = ["a", "b", "c", "zz"];

    fn random_path(rng: &mut Rng) -> JsonPath {
        let n = rng.below(4);
        let steps = (0..n)
            .map(|_| match rng.below(7) {
                0..=2 => Step::Key(NAMES[rng.below(3)].into()),
                3 => Step::AnyKey,
                4 => Step::AnyIndex,
                5 => Step::Descend(Some(NAMES[rng.below(3)].into())),
                _ => Step::Descend(None),
            })
            .collect();
        JsonPath { steps }
    }

    #[test]
    fn automaton_agrees_with_reference_matcher_on_generated_paths() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0u64;
        for case in 0..400 {
            let fields: Option<Vec<JsonPath>> = (rng.below(4) != 0).then(|| {
                (0..1 + rng.below(3))
                    .map(|_| random_path(&mut rng))
                    .collect()
            });
            let masks: Vec<(JsonPath, MaskRef)> = (0..rng.below(3))
                .map(|i| (random_path(&mut rng), mref(&format!("keep({i},0)"))))
                .collect();
            let records = random_path(&mut rng);
            let outside = if rng.below(2) == 0 {
                Outside::Remove
            } else {
                Outside::Mask(mref("redact"))
            };
            let recs = Records::Path(records.clone());
            let spec = ScopeSpec {
                fields: fields.as_deref(),
                masks: &masks,
                records: &recs,
                outside: &outside,
            };
            let scope = FieldScope::build(&spec, MAX_SCOPE_STATES).unwrap();
            for _ in 0..300 {
                let len = rng.below(7);
                let doc: Vec<Seg> = (0..len)
                    .map(|_| match rng.below(5) {
                        0 => Seg::I,
                        _ => Seg::K(DOC_KEYS[rng.below(4)]),
                    })
                    .collect();
                let mut state = scope.root();
                for n in 0..=doc.len() {
                    if n > 0 {
                        state = match doc[n - 1] {
                            Seg::K(k) => {
                                let (action, s) = scope.member(state, k);
                                assert_eq!(action, scope.node(s).action);
                                s
                            }
                            Seg::I => scope.element(state, 0),
                        };
                    }
                    let want = reference(fields.as_deref(), &masks, &records, &outside, &doc[..n]);
                    let got = scope.node(state);
                    let ctx = || {
                        format!(
                            "case {case}: fields {:?} masks {:?} records {} outside {:?} path {:?}",
                            fields
                                .as_ref()
                                .map(|f| f.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
                            masks
                                .iter()
                                .map(|(p, m)| format!("{p}={}", m.spec))
                                .collect::<Vec<_>>(),
                            records,
                            matches!(outside, Outside::Remove),
                            &doc[..n]
                        )
                    };
                    assert_eq!(got.action, want.action, "action: {}", ctx());
                    if got.action == FieldAction::Remove {
                        break;
                    }
                    assert_eq!(
                        got.mask.map(|m| m.spec.to_string()),
                        want.mask,
                        "mask: {}",
                        ctx()
                    );
                    assert_eq!(got.is_record, want.record, "record: {}", ctx());
                    if got.passthrough {
                        assert!(got.allowed && got.mask.is_none(), "{}", ctx());
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    fn build(
        fields: Option<&[&str]>,
        masks: &[(&str, &str)],
        records: Records,
        outside: Outside,
    ) -> FieldScope {
        let f = fields.map(paths);
        let m: Vec<(JsonPath, MaskRef)> = masks
            .iter()
            .map(|(p, s)| (JsonPath::parse(p).unwrap(), mref(s)))
            .collect();
        FieldScope::build(
            &ScopeSpec {
                fields: f.as_deref(),
                masks: &m,
                records: &records,
                outside: &outside,
            },
            MAX_SCOPE_STATES,
        )
        .unwrap()
    }

    #[test]
    fn list_response_scope() {
        let s = build(
            Some(&["$.items[*].name", "$.items[*].id_number", "$.total"]),
            &[("$.items[*].id_number", "keep(6,4)")],
            Records::Path(JsonPath::parse("$.items[*]").unwrap()),
            Outside::Remove,
        );
        let root = s.root();
        let (a, items) = s.member(root, "items");
        assert_eq!(a, FieldAction::KeepIfContainer);
        assert_eq!(s.member(root, "secret").0, FieldAction::Remove);
        assert_eq!(s.member(root, "total").0, FieldAction::Keep);
        let rec = s.element(items, 0);
        assert!(s.node(rec).is_record);
        assert_eq!(s.element(items, 7), rec);
        let (a, name) = s.member(rec, "name");
        assert_eq!(a, FieldAction::Keep);
        assert!(s.node(name).passthrough);
        assert!(s.node(name).mask.is_none());
        let (a, id) = s.member(rec, "id_number");
        assert_eq!(a, FieldAction::Keep);
        assert_eq!(&*s.node(id).mask.unwrap().spec, "keep(6,4)");
        let (a, phone) = s.member(rec, "phone");
        assert_eq!(a, FieldAction::Remove);
        // The dead state loops to itself.
        assert_eq!(s.member(phone, "x").1, phone);
        assert!(s.state_count() < 10, "{}", s.state_count());
    }

    #[test]
    fn default_records_depend_on_the_root() {
        let s = build(None, &[], Records::Default, Outside::Remove);
        assert!(s.root_is_record(false));
        assert!(!s.root_is_record(true));
        assert!(!s.node(s.root()).is_record);
        let e = s.element(s.root(), 0);
        assert!(s.node(e).is_record);
        assert!(s.node(e).passthrough);
        // Below a record nothing more happens.
        let (_, m) = s.member(e, "name");
        assert!(s.node(m).passthrough);
        let none = build(None, &[], Records::None, Outside::Remove);
        assert!(!none.counts_records());
        assert!(none.node(none.root()).passthrough);
    }

    #[test]
    fn recursive_descent_and_outside_mask() {
        let s = build(
            Some(&["$.items[*].name"]),
            &[("$..phone", "keep(3,4)")],
            Records::None,
            Outside::Mask(mref("redact")),
        );
        let (a, items) = s.member(s.root(), "items");
        assert_eq!(a, FieldAction::Keep);
        let rec = s.element(items, 0);
        let (a, addr) = s.member(rec, "address");
        assert_eq!(a, FieldAction::Keep);
        assert!(s.node(addr).outside);
        assert_eq!(&*s.node(addr).mask.unwrap().spec, "redact");
        let (_, deep) = s.member(addr, "phone");
        assert_eq!(&*s.node(deep).mask.unwrap().spec, "keep(3,4)");
        let (_, name) = s.member(rec, "name");
        assert!(!s.node(name).outside);
        assert!(s.node(name).mask.is_none());
    }

    #[test]
    fn state_cap_is_enforced() {
        // "an `a` eight members up": the textbook exponential subset
        // construction (the automaton must remember the last eight keys).
        let f = paths(&["$..a.*.*.*.*.*.*.*.*"]);
        let err = FieldScope::build(
            &ScopeSpec {
                fields: Some(&f),
                masks: &[],
                records: &Records::None,
                outside: &Outside::Remove,
            },
            50,
        )
        .unwrap_err();
        assert!(err.contains("more than 50"), "{err}");
    }
}
