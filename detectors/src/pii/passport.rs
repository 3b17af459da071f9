//! PRC passport numbers (护照号码) and Mainland travel permits to Hong Kong
//! and Macao (往来港澳通行证). Owns the format checks only.
//!
//! Accepted, upper case only (the documents print upper case):
//!
//! | document | pattern | example |
//! |---|---|---|
//! | ordinary passport, e-passport (2012–) | `E` + 8 digits | `E12345678` |
//! | ordinary passport, once `E` + 8 digits ran out | `E` + letter + 7 digits | `EA1234567` |
//! | ordinary passport, pre-2012 | `G` + 8 digits | `G12345678` |
//! | diplomatic / service / public-affairs passport | `D` / `S` / `P` + 7 digits | `D1234567` |
//! | travel permit, card (2014–) | `C` + 8 digits | `C12345678` |
//! | travel permit, once `C` + 8 digits ran out | `C` + letter + 7 digits | `CA1234567` |
//! | travel permit, booklet (pre-2014) | `W` + 8 digits | `W12345678` |
//!
//! The serial letter after `E`/`C` is never `I` or `O` (read as 1 and 0).
//! Travel permits to Taiwan and Hong Kong/Macao residents' home-return
//! permits are out of scope.
//!
//! **None of these numbers has a check digit.** A 9-character letter+digits
//! token matches by shape alone, so product codes and ticket numbers of the
//! same shape are found too: precision relies on context, i.e. on the column
//! name ([`crate::pii::classify_column`]) when discovering, and on the
//! share of a column's values that match.

/// Whether `s` is exactly a PRC passport number.
pub fn is_valid_passport(s: &str) -> bool {
    is_passport(s.as_bytes())
}

/// Whether `s` is exactly a Mainland travel permit to Hong Kong and Macao
/// number.
pub fn is_valid_travel_permit(s: &str) -> bool {
    is_travel_permit(s.as_bytes())
}

pub(crate) fn is_passport(b: &[u8]) -> bool {
    match b {
        [b'E' | b'G', rest @ ..] if digits(rest, 8) => true,
        [b'E', l, rest @ ..] => serial_letter(*l) && digits(rest, 7),
        [b'D' | b'S' | b'P', rest @ ..] => digits(rest, 7),
        _ => false,
    }
}

pub(crate) fn is_travel_permit(b: &[u8]) -> bool {
    match b {
        [b'C' | b'W', rest @ ..] if digits(rest, 8) => true,
        [b'C', l, rest @ ..] => serial_letter(*l) && digits(rest, 7),
        _ => false,
    }
}

fn serial_letter(c: u8) -> bool {
    c.is_ascii_uppercase() && c != b'I' && c != b'O'
}

fn digits(d: &[u8], n: usize) -> bool {
    d.len() == n && d.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        // (value, passport, travel permit)
        let cases: &[(&str, bool, bool)] = &[
            ("E12345678", true, false),
            ("EA1234567", true, false),
            ("G12345678", true, false),
            ("D1234567", true, false),
            ("S1234567", true, false),
            ("P1234567", true, false),
            ("C12345678", false, true),
            ("CA1234567", false, true),
            ("W12345678", false, true),
            ("E1234567", false, false),   // 7 digits
            ("E123456789", false, false), // 9 digits
            ("EI1234567", false, false),  // I is not a serial letter
            ("CO1234567", false, false),
            ("e12345678", false, false), // lower case
            ("K12345678", false, false),
            ("D12345678", false, false),
            ("W1234567", false, false),
            ("EA123456", false, false),
            ("", false, false),
        ];
        for &(s, p, t) in cases {
            assert_eq!(is_valid_passport(s), p, "{s}");
            assert_eq!(is_valid_travel_permit(s), t, "{s}");
        }
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0xe_1234_5678);
        for _ in 0..2_000 {
            let v = gen::passport(&mut rng);
            assert!(is_valid_passport(&v) && !is_valid_travel_permit(&v), "{v}");
            let v = gen::travel_permit(&mut rng);
            assert!(is_valid_travel_permit(&v) && !is_valid_passport(&v), "{v}");
            for (why, bad) in [
                gen::passport_near_miss(&mut rng),
                gen::travel_permit_near_miss(&mut rng),
            ] {
                assert!(!is_valid_passport(&bad), "{why}: {bad}");
                assert!(!is_valid_travel_permit(&bad), "{why}: {bad}");
            }
        }
    }
}
