//! What the engine says about a statement: the [`Assessment`], each piece of
//! [`Evidence`] behind it, the [`Measure`] names, and the one-line text an
//! analyst reads. Owns presentation only; the numbers come from
//! [`super::score`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the engine learned about one statement (and the window it falls
/// in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Assessment {
    /// `sqrt(Σ score²)` over the evidence scoring at least 1 (all of it,
    /// including items beyond the [`super::MAX_EVIDENCE`] kept), capped at
    /// `score_cap`; 0 when nothing stands out.
    pub score: f64,
    /// Evidence scoring at least 1, highest first, at most
    /// [`super::MAX_EVIDENCE`].
    pub evidence: Vec<Evidence>,
    /// The identity is still learning: scores, if any, came from the prior.
    pub learning: bool,
}

/// One measure that stood out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub measure: Measure,
    /// The table, sensitive tag or fingerprint (16 hex digits) the measure
    /// is about; for [`Measure::HourOfWeek`] the local hour (`"Tue 03:00"`).
    pub subject: Option<String>,
    pub observed: f64,
    /// The baseline's expectation (its EWMA mean). For `hour_of_week`,
    /// observed is the hour's smoothed share of activity and expected the
    /// average share, 1/168.
    pub expected: f64,
    /// The deviation unit: `score = (observed − expected) / scale`. 0 for
    /// measures whose score is not a linear deviation (`hour_of_week`,
    /// `new_table`, and the caller's `new_network` / `new_application`).
    pub scale: f64,
    pub score: f64,
}

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Rows of this one statement; subject: a table it touched.
    RowsPerStatement,
    /// Statements in the window.
    Statements,
    /// Rows in the window.
    Rows,
    /// Bytes sent in the window.
    Bytes,
    /// Sensitive values in the window; subject: the tag.
    Sensitive,
    /// Distinct tables in the window.
    DistinctTables,
    /// Statements in the window whose fingerprint this identity had never
    /// run.
    NewFingerprints,
    /// Rows from one table in the window; subject: the table.
    TableRows,
    /// Distinct key values of one fingerprint in the window; subject: the
    /// fingerprint.
    Enumeration,
    /// Statements (or API requests) in the window that failed because of
    /// the caller — refused, not found, not allowed — weighted by their
    /// share of the window (probing).
    Errors,
    /// Rarity of activity at this hour of the week.
    HourOfWeek,
    /// A table this identity never touched before; subject: the table.
    NewTable,
    /// A client network new for the user (scored by the caller).
    NewNetwork,
    /// An application new for the user (scored by the caller).
    NewApplication,
}

impl Measure {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::RowsPerStatement => "rows_per_statement",
            Measure::Statements => "statements",
            Measure::Rows => "rows",
            Measure::Bytes => "bytes",
            Measure::Sensitive => "sensitive",
            Measure::DistinctTables => "distinct_tables",
            Measure::NewFingerprints => "new_fingerprints",
            Measure::TableRows => "table_rows",
            Measure::Enumeration => "enumeration",
            Measure::Errors => "errors",
            Measure::HourOfWeek => "hour_of_week",
            Measure::NewTable => "new_table",
            Measure::NewNetwork => "new_network",
            Measure::NewApplication => "new_application",
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A number as an analyst wants it: counts without decimals, small
/// fractions with a few.
pub(crate) struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.abs() >= 100.0 || x.fract() == 0.0 {
            write!(f, "{x:.0}")
        } else if x.abs() >= 1.0 {
            write!(f, "{x:.1}")
        } else {
            write!(f, "{x:.2}")
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.subject.as_deref().unwrap_or("?");
        match self.measure {
            Measure::HourOfWeek => {
                return write!(
                    f,
                    "activity at {s}: {:.2}% of this identity's activity falls in this hour of \
                     the week (average {:.2}%) → {:.1}",
                    self.observed * 100.0,
                    self.expected * 100.0,
                    self.score
                )
            }
            Measure::NewTable => return write!(f, "first access to table {s} → {:.1}", self.score),
            Measure::NewNetwork => {
                return write!(f, "first connection from network {s} → {:.1}", self.score)
            }
            Measure::NewApplication => {
                return write!(f, "first use of application {s} → {:.1}", self.score)
            }
            Measure::RowsPerStatement => write!(f, "rows from {s} in one statement")?,
            Measure::Statements => f.write_str("statements in this window")?,
            Measure::Rows => f.write_str("rows in this window")?,
            Measure::Bytes => f.write_str("bytes sent in this window")?,
            Measure::Sensitive => write!(f, "sensitive values ({s}) in this window")?,
            Measure::DistinctTables => f.write_str("distinct tables in this window")?,
            Measure::NewFingerprints => {
                f.write_str("statement shapes new to this identity in this window")?
            }
            Measure::TableRows => write!(f, "rows from {s} in this window")?,
            Measure::Enumeration => {
                write!(f, "distinct key values of fingerprint {s} in this window")?
            }
            Measure::Errors => f.write_str("failed statements in this window")?,
        }
        write!(
            f,
            ": {} (usual {}, scale {}) → {:.1}",
            Num(self.observed),
            Num(self.expected),
            Num(self.scale),
            self.score
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Measure; 14] = [
        Measure::RowsPerStatement,
        Measure::Statements,
        Measure::Rows,
        Measure::Bytes,
        Measure::Sensitive,
        Measure::DistinctTables,
        Measure::NewFingerprints,
        Measure::TableRows,
        Measure::Enumeration,
        Measure::Errors,
        Measure::HourOfWeek,
        Measure::NewTable,
        Measure::NewNetwork,
        Measure::NewApplication,
    ];

    #[test]
    fn names_match_serde() {
        for m in ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<Measure>(&json).unwrap(), m);
        }
    }

    #[test]
    fn display_table() {
        let ev = |measure, subject: Option<&str>, observed, expected, scale, score| Evidence {
            measure,
            subject: subject.map(str::to_owned),
            observed,
            expected,
            scale,
            score,
        };
        let cases = [
            (
                ev(
                    Measure::TableRows,
                    Some("public.citizens"),
                    120_000.0,
                    350.4,
                    200.0,
                    12.0,
                ),
                "rows from public.citizens in this window: 120000 (usual 350, scale 200) → 12.0",
            ),
            (
                ev(
                    Measure::HourOfWeek,
                    Some("Tue 03:00"),
                    0.0002,
                    1.0 / 168.0,
                    0.0,
                    6.5,
                ),
                "activity at Tue 03:00: 0.02% of this identity's activity falls in this hour \
                 of the week (average 0.60%) → 6.5",
            ),
            (
                ev(
                    Measure::Enumeration,
                    Some("6cdf8c3f21acc0e8"),
                    950.0,
                    12.25,
                    50.0,
                    18.8,
                ),
                "distinct key values of fingerprint 6cdf8c3f21acc0e8 in this window: 950 \
                 (usual 12.2, scale 50) → 18.8",
            ),
            (
                ev(
                    Measure::NewTable,
                    Some("pg_catalog.pg_authid"),
                    1.0,
                    0.0,
                    0.0,
                    3.0,
                ),
                "first access to table pg_catalog.pg_authid → 3.0",
            ),
            (
                ev(Measure::Statements, None, 45.0, 0.5, 20.0, 2.2),
                "statements in this window: 45 (usual 0.50, scale 20) → 2.2",
            ),
            (
                ev(Measure::Errors, None, 23.0, 0.4, 3.0, 7.5),
                "failed statements in this window: 23 (usual 0.40, scale 3) → 7.5",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
        // Every measure renders without the placeholder subject where one
        // is given.
        for m in ALL {
            let text = ev(m, Some("x"), 1.0, 0.0, 1.0, 1.0).to_string();
            assert!(!text.contains('?'), "{text}");
        }
    }
}
