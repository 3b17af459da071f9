//! Injection and misuse signals: a small bitset of named properties of a
//! statement's shape that policy rules can match (`conditions = [...]`).
//! This module owns the set and the names only; [`crate::facts`] decides
//! which signals a statement carries. Like every fact, a signal must be a
//! function of the normalised text, so that facts cached by fingerprint are
//! right for every statement sharing it.

use std::fmt;

use serde::{Serialize, Serializer};

/// A set of [`Signals`] flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Signals(u32);

impl Signals {
    /// An OR branch (or a whole WHERE/HAVING/ON) that compares two constants
    /// or is a bare constant: `OR 1=1`, `OR 'a'='a'`, `OR 2>1`, `OR true`.
    pub const TAUTOLOGY: Signals = Signals(1 << 0);
    /// UNION-based extraction: a UNION branch after the first with no FROM,
    /// a constant/NULL-only projection, or a system-catalog source.
    pub const UNION_SELECT: Signals = Signals(1 << 1);
    /// The statement ends in a comment that swallows the rest of the line
    /// (`--`, MySQL `#`) or an unterminated `/*`, after code: the classic
    /// `admin'--` truncation.
    pub const COMMENT_TRUNCATION: Signals = Signals(1 << 2);
    /// Calls a time-delay function (`pg_sleep*`, MySQL `sleep`, `benchmark`).
    pub const TIME_DELAY: Signals = Signals(1 << 3);
    /// Reads or writes server files: `pg_read_file`, `pg_read_binary_file`,
    /// `pg_ls_dir`, `pg_stat_file`, `lo_import`, `lo_export`, `pg_file_write`,
    /// MySQL `load_file`, `COPY … FROM/TO 'file'`, `INTO OUTFILE/DUMPFILE`,
    /// `LOAD DATA [LOCAL] INFILE`, `LOAD XML`.
    pub const FILE_ACCESS: Signals = Signals(1 << 4);
    /// Runs a server-side program: `COPY … FROM/TO PROGRAM`.
    pub const PROGRAM_EXEC: Signals = Signals(1 << 5);
    /// Opens network connections from the server: `dblink*`.
    pub const NETWORK_ACCESS: Signals = Signals(1 << 6);
    /// Reads schema metadata: `information_schema.*`, `pg_catalog` relations
    /// such as `pg_class`, `pg_attribute`, `pg_namespace`, `pg_tables`,
    /// `pg_roles`, `pg_user`, `pg_database`, `pg_proc`, `pg_settings`,
    /// MySQL `mysql.*` / `performance_schema.*` / `sys.*`.
    pub const CATALOG_PROBE: Signals = Signals(1 << 7);
    /// Reads credentials: `pg_shadow`, `pg_authid`, `pg_user_mapping(s)`,
    /// `mysql.user`, `mysql.global_priv`, `mysql.slave_master_info`,
    /// `mysql.servers`.
    pub const CATALOG_SECRET: Signals = Signals(1 << 8);
    /// Builds text from encoded pieces: `chr()`/`char()`, `decode()`,
    /// `convert_from()`, `unhex()`, `from_base64()`.
    pub const ENCODED_LITERAL: Signals = Signals(1 << 9);

    /// Every signal with its name, in bit order. Names are what policy files
    /// and audit records use.
    pub const NAMED: [(Signals, &'static str); 10] = [
        (Signals::TAUTOLOGY, "tautology"),
        (Signals::UNION_SELECT, "union_select"),
        (Signals::COMMENT_TRUNCATION, "comment_truncation"),
        (Signals::TIME_DELAY, "time_delay"),
        (Signals::FILE_ACCESS, "file_access"),
        (Signals::PROGRAM_EXEC, "program_exec"),
        (Signals::NETWORK_ACCESS, "network_access"),
        (Signals::CATALOG_PROBE, "catalog_probe"),
        (Signals::CATALOG_SECRET, "catalog_secret"),
        (Signals::ENCODED_LITERAL, "encoded_literal"),
    ];

    pub const fn empty() -> Self {
        Signals(0)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: Signals) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set here.
    pub const fn intersects(self, other: Signals) -> bool {
        self.0 & other.0 != 0
    }

    pub fn insert(&mut self, other: Signals) {
        self.0 |= other.0;
    }

    pub const fn union(self, other: Signals) -> Signals {
        Signals(self.0 | other.0)
    }

    /// The signal called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Signals> {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(s, _)| *s)
    }

    /// Names of the flags set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED
            .iter()
            .filter(move |(s, _)| self.contains(*s))
            .map(|(_, n)| *n)
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl Serialize for Signals {
    /// A list of names, as audit records show them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        let mut all = Signals::empty();
        for (s, n) in Signals::NAMED {
            assert_eq!(Signals::from_name(n), Some(s));
            assert!(!all.intersects(s), "{n} reuses a bit");
            all.insert(s);
        }
        assert_eq!(all.names().count(), Signals::NAMED.len());
        assert_eq!(Signals::from_name("nope"), None);
    }

    #[test]
    fn set_operations() {
        let s = Signals::TAUTOLOGY.union(Signals::TIME_DELAY);
        assert!(s.contains(Signals::TAUTOLOGY));
        assert!(!s.contains(Signals::TAUTOLOGY.union(Signals::FILE_ACCESS)));
        assert!(s.intersects(Signals::TAUTOLOGY.union(Signals::FILE_ACCESS)));
        assert_eq!(s.names().collect::<Vec<_>>(), ["tautology", "time_delay"]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["tautology","time_delay"]"#
        );
    }
}
