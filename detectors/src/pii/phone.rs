//! Mainland China mobile numbers (手机号). Owns the format check only.
//!
//! Accepted: 11 digits `1[3-9]xxxxxxxxx` (the mobile number plan of the
//! MIIT *Telecommunications Network Numbering Plan*: every mobile block is
//! 13x–19x; 10x–12x are service and data-card numbers), written
//!
//! * plain (`13812345678`) or in the usual 3-4-4 grouping with one space or
//!   one dash between groups (`138 1234 5678`, `138-1234-5678`), the same
//!   separator both times;
//! * optionally after the country code `+86`, `86` or `0086`, itself
//!   optionally followed by one space or dash (`+86 138 1234 5678`).
//!
//! There is no check digit: about 7% of random 11-digit strings pass, so
//! precision on free text relies on the whole-run rule of the scanner
//! (an 11-digit number inside a longer digit run is not a phone) and, for
//! discovery, on the column name. Landline numbers are out of scope: they
//! are not personal identifiers on their own and are far too ambiguous.

/// Whether `s` is exactly a mobile number in one of the accepted forms.
pub fn is_valid_phone(s: &str) -> bool {
    let b = s.as_bytes();
    is_body(b)
        || [&b"+86"[..], b"0086", b"86"].iter().any(|cc| {
            b.strip_prefix(*cc)
                .is_some_and(|rest| is_body(strip_sep(rest)))
        })
}

fn strip_sep(b: &[u8]) -> &[u8] {
    match b {
        [b' ' | b'-', rest @ ..] => rest,
        _ => b,
    }
}

/// 11 digits, or 3-4-4 with one consistent separator.
fn is_body(b: &[u8]) -> bool {
    match b.len() {
        11 => is_mobile(b),
        13 => {
            let (head, rest) = b.split_at(3);
            let (sep, rest) = rest.split_at(1);
            let (mid, rest) = rest.split_at(4);
            let (sep2, tail) = rest.split_at(1);
            let mut d = [0u8; 11];
            d[..3].copy_from_slice(head);
            d[3..7].copy_from_slice(mid);
            d[7..].copy_from_slice(tail);
            matches!(sep, [b' ' | b'-']) && sep == sep2 && is_mobile(&d)
        }
        _ => false,
    }
}

/// Whether `d` is exactly the 11 digits of a mobile number.
pub(crate) fn is_mobile(d: &[u8]) -> bool {
    matches!(d, [b'1', b'3'..=b'9', ..]) && d.len() == 11 && d.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("13812345678", true),
            ("19912345678", true),
            ("+8613812345678", true),
            ("8613812345678", true),
            ("008613812345678", true),
            ("+86 138 1234 5678", true),
            ("+86-138-1234-5678", true),
            ("0086 13812345678", true),
            ("138-1234-5678", true),
            ("138 1234 5678", true),
            ("138-1234 5678", false), // mixed separators
            ("1381234567", false),    // 10 digits
            ("138123456789", false),  // 12 digits
            ("12812345678", false),   // 12x is not mobile
            ("23812345678", false),
            ("1381-234-5678", false), // 4-3-4
            ("+8713812345678", false),
            ("+86", false),
            ("138  1234 5678", false),
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(is_valid_phone(s), ok, "{s}");
        }
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0x0138);
        for _ in 0..2_000 {
            let v = gen::phone(&mut rng);
            assert!(is_valid_phone(&v), "{v}");
            let (why, bad) = gen::phone_near_miss(&mut rng);
            assert!(!is_valid_phone(&bad), "{why}: {bad}");
        }
    }
}
