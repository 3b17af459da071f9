//! Sensitive-data detectors: finding Chinese citizens' personal data (and a
//! few related kinds) in query results. Pure: no I/O (the clock is read
//! once per [`Scanner`] for "this year"), no global state, no panics and no
//! allocation per value: everything here runs on bytes from the wire that
//! an attacker may have chosen.
//!
//! Three layers, each usable alone:
//!
//! * **Validators**, one file per format, each `is_valid_xxx(&str)` on a
//!   whole string (nothing around it), with the standard it follows:
//!
//!   | kind ([`Kind::tag`]) | validator | accepts | evidence |
//!   |---|---|---|---|
//!   | `pii.id_number` | [`is_valid_id_number`], [`parse_id_number`] | GB 11643-1999, 18 chars with ISO 7064 MOD 11-2 check, or legacy 15 digits; GB/T 2260 province; real birth date 1900..=this year | check digit + date + region |
//!   | `pii.phone` | [`is_valid_phone`] | `1[3-9]` + 9 digits, optional `+86`/`86`/`0086`, 3-4-4 grouping | shape only |
//!   | `finance.bank_card` | [`is_valid_bank_card`] | 16–19 digits, Luhn, plausible IIN (UnionPay 62 first) | check digit + IIN |
//!   | `org.credit_code` | [`is_valid_credit_code`] | GB 32100-2015, 18 chars, mod-31 check, authority/type table | check character + structure |
//!   | `pii.email` | [`is_valid_email`] | RFC 5322 `dot-atom` subset with RFC 5321 lengths | shape |
//!   | `pii.passport` | [`is_valid_passport`] | `E`+8 digits, `E`+letter+7, `G`+8, `D`/`S`/`P`+7 | shape only: needs context |
//!   | `pii.travel_permit` | [`is_valid_travel_permit`] | `C`+8 digits, `C`+letter+7, `W`+8 | shape only: needs context |
//!   | `net.ip` | [`is_valid_ip`], [`parse_ip`] | std `Ipv4Addr` (strict dotted quad) / `Ipv6Addr` | shape |
//!   | `pii.plate` | [`is_valid_plate`] | GA 36-2018: province character, authority letter, 5/6-character tail or special suffix | province anchor |
//!
//!   Each file's docs say exactly what it accepts and why; each has
//!   table-driven tests on generated valid values and near misses.
//! * **The [`Scanner`]** finds every such value *inside* a column value
//!   (`"联系电话: 138-1234-5678"`) in one pass, never counting the same
//!   bytes twice, and adds what it found to a [`Counts`] — per call, i.e.
//!   per value (see [`scan`] for the rules that decide between kinds).
//! * **[`classify_column`]** reads a column *name* (English, pinyin
//!   initials, Chinese) and is the only evidence for `pii.name` and
//!   `pii.address`, which have no content form. [`default_level`] gives
//!   the shipped level 1–4 of each tag ([`tags`] explains the basis).
//!
//! Measured quality on a generated corpus (valid values, near misses,
//! look-alike noise) is asserted by the `pii_precision_recall` test: recall
//! ≥ 0.99 for every kind, precision ≥ 0.95 for the checksum-backed kinds.

pub mod bank_card;
pub mod credit_code;
pub mod email;
pub mod id_number;
pub mod ip;
mod kind;
pub mod names;
pub mod passport;
pub mod phone;
pub mod plate;
pub mod scan;
pub mod tags;

#[cfg(test)]
mod corpus;
#[cfg(test)]
pub(crate) mod gen;

pub use bank_card::{is_valid_bank_card, luhn_valid};
pub use credit_code::is_valid_credit_code;
pub use email::is_valid_email;
pub use id_number::{is_valid_id_number, parse_id_number, parse_id_number_until, IdNumber};
pub use ip::{is_valid_ip, parse_ip};
pub use kind::Kind;
pub use names::classify_column;
pub use passport::{is_valid_passport, is_valid_travel_permit};
pub use phone::is_valid_phone;
pub use plate::is_valid_plate;
pub use scan::{Counts, Scanner};
pub use tags::{default_level, default_levels, level_for_tag};
