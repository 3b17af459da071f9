//! Default sensitivity levels of the classification tags. Owns the shipped
//! mapping tag → level; deployments override and extend it in the
//! classification file's `[levels]` table (`docs/policy.md`,
//! "Classification file"), whose patterns (`"pii.*" = 3`) and per-column
//! `level` take precedence. Levels are the numbers 1–4 the policy crate
//! accepts (`min_level` in rules).
//!
//! # Levels
//!
//! The scale is the one the policy crate and `docs/policy.md` use:
//!
//! | level | meaning | tags by default |
//! |---|---|---|
//! | 1 | general (一般数据), including ordinary personal information | `pii.name`, `pii.email`, `net.ip`, `pii.plate`, `org.credit_code` |
//! | 2 | sensitive personal information (敏感个人信息) | `pii.id_number`, `pii.phone`, `pii.passport`, `pii.travel_permit`, `finance.bank_card`, `pii.address` |
//! | 3 | important data (重要数据) | none by default: declared per dataset |
//! | 4 | core data (核心数据) | none by default: declared per dataset |
//!
//! # Basis
//!
//! * **GB/T 43697-2024** *Data security technology — Rules for data
//!   classification and grading* (数据安全技术 数据分类分级规则) grades data
//!   as general, important and core by the harm its leak or misuse would
//!   do to national security, the economy and the public; personal
//!   information is graded within it, sensitive personal information above
//!   the rest. *Important* and *core* status depends on volume, sector
//!   catalogues and context (a population register as a whole), never on
//!   one value's type, so no tag gets level 3 or 4 by default: deployments
//!   declare them in the classification file.
//! * **Personal Information Protection Law** art. 28: sensitive personal
//!   information is what, once leaked, easily harms dignity, person or
//!   property, explicitly including *financial accounts* and *whereabouts*;
//!   GB/T 35273-2020 (annex B) lists ID card numbers, passports and other
//!   identity documents as sensitive. Hence level 2 for ID numbers,
//!   passports, travel permits and bank cards; addresses (whereabouts) and
//!   mobile numbers (the key to real-name SIM registration and most account
//!   recovery) are graded the same, erring on the protective side.
//! * Names, e-mail addresses, IP addresses and plates are personal
//!   information (PIPL art. 4) but not sensitive on their own, and a credit
//!   code identifies an organisation and is published on its business
//!   licence (企业信息公示暂行条例): level 1. Masking and alert rules can
//!   still name their tags directly.

use super::Kind;

/// General data, ordinary personal information included.
pub const LEVEL_GENERAL: u8 = 1;
/// Sensitive personal information (PIPL art. 28).
pub const LEVEL_SENSITIVE_PERSONAL: u8 = 2;
/// Important data: never a default, declared by the deployment.
pub const LEVEL_IMPORTANT: u8 = 3;
/// Core data: never a default, declared by the deployment.
pub const LEVEL_CORE: u8 = 4;

/// The shipped level of `kind`'s tag.
pub const fn default_level(kind: Kind) -> u8 {
    match kind {
        Kind::CreditCode | Kind::Name | Kind::Email | Kind::Ip | Kind::Plate => LEVEL_GENERAL,
        Kind::IdNumber
        | Kind::Phone
        | Kind::BankCard
        | Kind::Passport
        | Kind::TravelPermit
        | Kind::Address => LEVEL_SENSITIVE_PERSONAL,
    }
}

/// The shipped level of an exact tag (`"pii.phone"`), if it is one of ours.
pub fn level_for_tag(tag: &str) -> Option<u8> {
    Kind::from_tag(tag).map(default_level)
}

/// Every tag with its shipped level, in [`Kind::ALL`] order.
pub fn default_levels() -> impl Iterator<Item = (&'static str, u8)> {
    Kind::ALL.into_iter().map(|k| (k.tag(), default_level(k)))
}

/// The shipped levels as a classification-file `[levels]` table, one
/// exact tag per line, for the discovery tool to write out.
pub fn default_levels_toml() -> String {
    let mut out = String::from("[levels]\n");
    for (tag, level) in default_levels() {
        out.push_str(&format!("\"{tag}\" = {level}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, u8)] = &[
            ("pii.id_number", 2),
            ("pii.phone", 2),
            ("finance.bank_card", 2),
            ("pii.passport", 2),
            ("pii.travel_permit", 2),
            ("pii.address", 2),
            ("pii.name", 1),
            ("pii.email", 1),
            ("net.ip", 1),
            ("pii.plate", 1),
            ("org.credit_code", 1),
        ];
        assert_eq!(cases.len(), Kind::COUNT);
        for &(tag, level) in cases {
            assert_eq!(level_for_tag(tag), Some(level), "{tag}");
        }
        assert_eq!(level_for_tag("pii.*"), None);
        assert!(default_levels().all(|(_, l)| (LEVEL_GENERAL..LEVEL_IMPORTANT).contains(&l)));
    }

    #[test]
    fn toml_table() {
        let t = default_levels_toml();
        assert!(t.starts_with("[levels]\n"));
        assert!(t.contains("\"pii.id_number\" = 2\n"));
        assert!(t.contains("\"org.credit_code\" = 1\n"));
        assert_eq!(t.lines().count(), 1 + Kind::COUNT);
    }
}
