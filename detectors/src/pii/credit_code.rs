//! Unified social credit codes of organisations (统一社会信用代码).
//! Owns the format check only.
//!
//! Accepted (GB 32100-2015 *Coding rule of the unified social credit
//! identifier for legal entities and other organizations*): 18 characters
//! from `0123456789ABCDEFGHJKLMNPQRTUWXY` (upper case; the standard leaves
//! out I, O, Z, S and V), laid out as
//!
//! | position | content | checked |
//! |---|---|---|
//! | 1 | registration authority: `1`–`9`, `A`, `N`, `Y` | yes |
//! | 2 | organisation type, per authority (table below) | yes |
//! | 3–8 | administrative division code (GB/T 2260) | digits |
//! | 9–17 | organisation code (GB 11714) | charset only |
//! | 18 | check character | yes |
//!
//! The check character: each of the first 17 characters' values (its index
//! in the charset) weighted `1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28`
//! (3^i mod 31), summed; the check value is `31 - sum mod 31`, with 31
//! written `0`. Since 31 is prime and no weight is 0 mod 31, every
//! single-character substitution changes the check.
//!
//! Organisation types by authority (GB 32100-2015 table 1, with the
//! agriculture authority `N` added in 2019): 1 机构编制 {1,2,3,9}; 2 外交
//! {1,9}; 3 司法行政 {1,2,3,4,5,9}; 4 文化 {1,9}; 5 民政 {1,2,3,9}; 6 旅游
//! {1,2,9}; 7 宗教 {1,2,9}; 8 工会 {1,9}; 9 工商 {1,2,3}; A 中央军委改革和
//! 编制办公室 {1,9}; N 农业 {1,2,3,9}; Y 其他 {1}.
//!
//! The organisation code's own GB 11714 check digit (position 17) is not
//! verified: codes issued to individual businesses (个体工商户, type `92`)
//! do not carry a real organisation code.

/// Characters of a credit code, in value order (index = value).
pub const CREDIT_CODE_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// 3^i mod 31 for the first 17 positions.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

const NO_VALUE: u8 = u8::MAX;

/// Character → value, `NO_VALUE` outside the charset.
const VALUES: [u8; 256] = {
    let mut t = [NO_VALUE; 256];
    let mut i = 0;
    while i < CREDIT_CODE_CHARSET.len() {
        t[CREDIT_CODE_CHARSET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether `s` is exactly a valid unified social credit code.
pub fn is_valid_credit_code(s: &str) -> bool {
    is_credit_code(s.as_bytes())
}

pub(crate) fn is_credit_code(b: &[u8]) -> bool {
    let &[authority, kind, ..] = b else {
        return false;
    };
    b.len() == 18
        && type_allowed(authority, kind)
        && b.get(2..8)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.iter().all(|&c| VALUES[usize::from(c)] != NO_VALUE)
        && b.get(..17).and_then(check_char) == b.get(17).copied()
}

fn type_allowed(authority: u8, kind: u8) -> bool {
    let types: &[u8] = match authority {
        b'1' | b'5' | b'N' => b"1239",
        b'2' | b'4' | b'8' | b'A' => b"19",
        b'3' => b"123459",
        b'6' | b'7' => b"129",
        b'9' => b"123",
        b'Y' => b"1",
        _ => return false,
    };
    types.contains(&kind)
}

/// The check character for a 17-character body; `None` if a character is
/// outside the charset.
pub(crate) fn check_char(body: &[u8]) -> Option<u8> {
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in body.iter().zip(WEIGHTS) {
        let v = VALUES[usize::from(c)];
        if v == NO_VALUE {
            return None;
        }
        sum += u32::from(v) * w;
    }
    let value = (31 - sum % 31) % 31;
    CREDIT_CODE_CHARSET.get(value as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("91350100M000100Y43", true), // the example printed in GB 32100 guides
            ("91350100M000100Y44", false),
            ("91350100m000100Y43", false), // lower case
            ("91350100M000100Y4", false),  // 17
            ("91350100M000100Y433", false),
            ("94350100M000100Y4X", false), // type 4 under authority 9
            ("01350100M000100Y43", false), // authority 0
            ("9135010OM000100Y43", false), // letter in the division code
            ("91350100I000100Y43", false), // I is not in the charset
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(is_valid_credit_code(s), ok, "{s}");
        }
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0x0003_2100_2015);
        for _ in 0..2_000 {
            let v = gen::credit_code(&mut rng);
            assert!(is_valid_credit_code(&v), "{v}");
            let (why, bad) = gen::credit_code_near_miss(&mut rng);
            assert!(!is_valid_credit_code(&bad), "{why}: {bad}");
        }
    }

    #[test]
    fn every_single_substitution_is_caught() {
        let good = *b"91350100M000100Y43";
        for i in 8..18 {
            for &c in CREDIT_CODE_CHARSET {
                if c == good[i] {
                    continue;
                }
                let mut bad = good;
                bad[i] = c;
                assert!(!is_credit_code(&bad), "{i} {}", c as char);
            }
        }
    }
}
