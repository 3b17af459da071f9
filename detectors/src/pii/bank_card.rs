//! Payment card numbers (银行卡号). Owns the format check only.
//!
//! Accepted: 16 to 19 digits (ISO/IEC 7812 PANs as issued in China:
//! UnionPay 16–19, Visa/Mastercard/JCB 16, legacy domestic 19), plain or in
//! groups of four separated by one space or one dash each (the last group
//! 1–4 digits: `6222 0212 3456 7890 123`), that
//!
//! * pass the Luhn check (ISO/IEC 7812-1 annex B), and
//! * start with a plausible issuer identification number (IIN).
//!
//! Luhn alone lets 10% of random digit strings through; the IIN rule is
//! what keeps order numbers and timestamps out. It is, by length:
//!
//! | digits | first digits accepted | why |
//! |---|---|---|
//! | 16 | `3`–`6`, or `2221`–`2720` | JCB 35, Visa 4, Mastercard 51–55 and 2-series, UnionPay 62, Discover 6 |
//! | 17, 18 | `62` | only UnionPay issues these lengths |
//! | 19 | `3`–`6`, `9558`, `95599` | UnionPay 62 (most debit cards), JCB/Visa 19-digit; ICBC and ABC pre-UnionPay debit cards |
//!
//! Cards with other prefixes (private-label, prepaid, fleet) are missed on
//! purpose; deployments that hold them can tag the column by hand. 13- to
//! 15-digit PANs (Amex 15, Diners 14) are not issued by mainland banks and
//! would collide with legacy ID numbers and phone numbers with prefixes.

/// Fewest digits of an accepted card number.
pub const MIN_CARD_DIGITS: usize = 16;
/// Most digits of an accepted card number (ISO/IEC 7812 maximum).
pub const MAX_CARD_DIGITS: usize = 19;

/// Whether `s` is exactly a card number, plain or grouped by four.
pub fn is_valid_bank_card(s: &str) -> bool {
    let mut buf = [0u8; MAX_CARD_DIGITS];
    compact(s.as_bytes(), &mut buf).is_some_and(|n| buf.get(..n).is_some_and(is_card_digits))
}

/// The digits of `b` into `out`: plain, or groups of four with one space or
/// dash (the same one throughout) between them, the last group 1–4 digits.
fn compact(b: &[u8], out: &mut [u8; MAX_CARD_DIGITS]) -> Option<usize> {
    let (mut n, mut group, mut sep) = (0usize, 0usize, None);
    for &c in b {
        if c.is_ascii_digit() {
            *out.get_mut(n)? = c;
            n += 1;
            group += 1;
        } else if c == b' ' || c == b'-' {
            if group != 4 || sep.is_some_and(|s| s != c) {
                return None;
            }
            sep = Some(c);
            group = 0;
        } else {
            return None;
        }
    }
    (group > 0 && (sep.is_none() || group <= 4)).then_some(n)
}

/// Whether `d` is exactly the digits of an accepted card number.
pub(crate) fn is_card_digits(d: &[u8]) -> bool {
    // `luhn_valid` refuses any non-digit: no separate pass for that.
    (MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&d.len()) && plausible_iin(d) && luhn_valid(d)
}

fn plausible_iin(d: &[u8]) -> bool {
    let first = d.first().copied().unwrap_or(0);
    match d.len() {
        16 => {
            matches!(first, b'3'..=b'6')
                || d.get(..4)
                    .is_some_and(|p| (&b"2221"[..]..=&b"2720"[..]).contains(&p))
        }
        17 | 18 => d.starts_with(b"62"),
        19 => matches!(first, b'3'..=b'6') || d.starts_with(b"9558") || d.starts_with(b"95599"),
        _ => false,
    }
}

/// Digits summed between two reductions mod 10 in [`luhn_valid`]: even, so
/// that every chunk (taken from the right) starts on an undoubled digit,
/// and small enough that a chunk's sum (at most 9 a digit) fits a `u32`.
const LUHN_CHUNK: usize = 256;

/// What a digit adds to the Luhn sum when doubled: 2d, less 9 above 9.
const LUHN_DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/// The Luhn (mod 10) check over a string of ASCII digits; false for an
/// empty string or any non-digit. It runs on every card-shaped number the
/// scanner meets, so the sum is reduced once per chunk rather than once
/// per digit (a division in the loop's dependency chain): exact for any
/// length.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for chunk in digits.rchunks(LUHN_CHUNK) {
        for (i, &c) in chunk.iter().rev().enumerate() {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return false;
            }
            sum += if i % 2 == 1 {
                LUHN_DOUBLED[usize::from(d)]
            } else {
                u32::from(d)
            };
        }
        sum %= 10;
    }
    !digits.is_empty() && sum == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("4111111111111111", true),      // Visa test PAN
            ("5555555555554444", true),      // Mastercard test PAN
            ("2223000048400011", true),      // Mastercard 2-series test PAN
            ("3530111333300000", true),      // JCB test PAN
            ("6200000000000005", true),      // UnionPay test PAN
            ("6200 0000 0000 0005", true),   // grouped
            ("6200-0000-0000-0005", true),   // grouped with dashes
            ("6200 0000-0000 0005", false),  // mixed separators
            ("62000 00000 00000 5", false),  // groups of five
            ("6200000000000004", false),     // Luhn
            ("4111111111111", false),        // 13 digits
            ("378282246310005", false),      // Amex, 15 digits
            ("1111111111111117", false),     // IIN 1
            ("7111111111111114", false),     // IIN 7
            ("2000000000000006", false),     // 2-series below 2221
            ("41111111111111113", false),    // 17 digits, not UnionPay
            ("620000000000000005", true),    // 18 digits, UnionPay
            ("62000000000000000005", false), // 20 digits, Luhn-valid
            ("6200 0000 0000 0005 ", false), // trailing separator
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(is_valid_bank_card(s), ok, "{s}");
        }
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"7992x398713"));
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0x6222);
        for _ in 0..2_000 {
            let v = gen::bank_card(&mut rng);
            assert!(is_valid_bank_card(&v), "{v}");
            let (why, bad) = gen::bank_card_near_miss(&mut rng);
            assert!(!is_valid_bank_card(&bad), "{why}: {bad}");
        }
    }

    /// The per-digit definition (ISO/IEC 7812-1 annex B as written).
    #[allow(clippy::manual_is_multiple_of)] // rust-version 1.80, as in id_number
    fn luhn_by_definition(digits: &[u8]) -> bool {
        let mut sum = 0u64;
        for (i, &c) in digits.iter().rev().enumerate() {
            if !c.is_ascii_digit() {
                return false;
            }
            let d = u64::from(c - b'0') * if i % 2 == 1 { 2 } else { 1 };
            sum += if d > 9 { d - 9 } else { d };
        }
        !digits.is_empty() && sum % 10 == 0
    }

    #[test]
    fn luhn_matches_its_definition_at_every_length() {
        let mut rng = Rng(0x1c4d);
        for _ in 0..20_000 {
            // Lengths around the chunk size too, where the parity of the
            // chunks matters.
            let n = match rng.below(3) {
                0 => rng.below(40),
                1 => rng.range(250, 520),
                _ => rng.below(1100),
            } as usize;
            let mut d: Vec<u8> = rng.digits(n).into_bytes();
            if n > 0 && rng.chance(5) {
                let i = rng.below(n as u64) as usize;
                d[i] = rng.pick(b"x/:a \\0");
            }
            assert_eq!(luhn_valid(&d), luhn_by_definition(&d), "{d:?}");
        }
    }

    #[test]
    fn every_single_digit_change_is_caught() {
        let good = *b"6200000000000005";
        for i in 0..good.len() {
            for d in b'0'..=b'9' {
                let mut bad = good;
                bad[i] = d;
                assert_eq!(luhn_valid(&bad), d == good[i], "{i} {d}");
            }
        }
    }
}
