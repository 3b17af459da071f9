//! Motor-vehicle licence plates (机动车号牌). Owns the format check only.
//!
//! Accepted (GA 36-2018 *Motor vehicle number plates of the PRC*, with the
//! 2022 extension of new-energy serial letters), upper case only:
//!
//! 1. a province abbreviation: one of the 31 characters
//!    京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼;
//! 2. the issuing authority letter, `A`–`Z` except `I` and `O`;
//! 3. optionally one separator: `·` (U+00B7, as printed) or a space;
//! 4. a tail of serial characters `[A-HJ-NP-Z0-9]` (no `I`, `O`):
//!    * **ordinary**: 5 characters with at most two letters (`京A·12345`,
//!      `粤B·1AB23`);
//!    * **new energy**, 6 characters: small vehicles a type letter
//!      `A`–`H`, `J`, `K` (`D`/`A`/`B`/`C`/`E` battery electric,
//!      `F`/`G`/`H`/`J`/`K` others), one serial character and 4 digits
//!      (`京AD12345`); large vehicles 5 digits and `D` or `F` (`京A12345D`);
//!    * **special**: 4 characters and one of 学 (driving school), 警
//!      (police), 港/澳 (cross-border), 挂 (trailer): `粤Z1234港`.
//!
//! The tail must end the alphanumeric run (`京A123456789` is not a plate).
//! Embassy (使), consulate (领) and armed-police (WJ) plates are not
//! accepted. Plates have no check character; the province character in
//! front is what makes a random 6–7 character code unlikely to match.

/// Province abbreviations, in the GA 36-2018 order of the brief.
pub const PLATE_PROVINCES: [&str; 31] = [
    "京", "津", "沪", "渝", "冀", "豫", "云", "辽", "黑", "湘", "皖", "鲁", "新", "苏", "浙", "赣",
    "鄂", "桂", "甘", "晋", "蒙", "陕", "吉", "闽", "贵", "粤", "青", "藏", "川", "宁", "琼",
];

/// Last characters of special-use plates with a 4-character tail.
const SUFFIXES: [&str; 5] = ["学", "警", "港", "澳", "挂"];

/// U+00B7 MIDDLE DOT, the separator printed on plates.
const MIDDLE_DOT: &[u8] = "·".as_bytes();

/// Letters of a small new-energy vehicle's first serial character.
const NEW_ENERGY_TYPES: &[u8] = b"ABCDEFGHJK";

/// Most letters in an ordinary 5-character tail.
const MAX_ORDINARY_LETTERS: usize = 2;

/// Whether `s` is exactly a licence plate.
pub fn is_valid_plate(s: &str) -> bool {
    plate_len(s.as_bytes()) == Some(s.len())
}

/// The length in bytes of the plate at the start of `b`, if `b` starts with
/// one (the province character, `b[0..3]`, included).
pub(crate) fn plate_len(b: &[u8]) -> Option<usize> {
    PLATE_PROVINCES
        .iter()
        .find(|p| b.starts_with(p.as_bytes()))?;
    // Every province character is 3 bytes of UTF-8.
    if !b.get(3).copied().is_some_and(serial_letter) {
        return None;
    }
    let mut start = 4;
    let rest = b.get(start..)?;
    if rest.starts_with(MIDDLE_DOT) {
        start += MIDDLE_DOT.len();
    } else if rest.first() == Some(&b' ') {
        start += 1;
    }
    let after = b.get(start..)?;
    let tail_len = after
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let tail = after.get(..tail_len)?;
    if !tail.iter().all(|&c| serial_char(c)) {
        return None;
    }
    let end = start + tail_len;
    match tail_len {
        5 => (letters(tail) <= MAX_ORDINARY_LETTERS).then_some(end),
        6 => new_energy(tail).then_some(end),
        4 => {
            let after_tail = b.get(end..)?;
            SUFFIXES
                .iter()
                .find(|s| after_tail.starts_with(s.as_bytes()))
                .map(|s| end + s.len())
        }
        _ => None,
    }
}

fn serial_letter(c: u8) -> bool {
    c.is_ascii_uppercase() && c != b'I' && c != b'O'
}

fn serial_char(c: u8) -> bool {
    c.is_ascii_digit() || serial_letter(c)
}

fn letters(tail: &[u8]) -> usize {
    tail.iter().filter(|c| c.is_ascii_alphabetic()).count()
}

fn new_energy(tail: &[u8]) -> bool {
    match tail {
        [t, _, d @ ..] if NEW_ENERGY_TYPES.contains(t) && d.iter().all(u8::is_ascii_digit) => true,
        [d @ .., b'D' | b'F'] => d.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("京A12345", true),
            ("京A·12345", true),
            ("京A 12345", true),
            ("粤B1AB23", true),
            ("沪AD12345", true), // small new energy
            ("沪AFA2345", true),
            ("沪A12345F", true), // large new energy
            ("沪AK12345", true), // 2022 letters
            ("粤Z1234港", true),
            ("京A1234学", true),
            ("京A1234警", true),
            ("京A1234", false),    // 4 without a suffix
            ("京A123456", false),  // 6 not new energy
            ("京AX12345", false),  // X is not a new-energy type
            ("京A1234567", false), // 7
            ("京I12345", false),   // authority I
            ("京A12O45", false),   // O in the tail
            ("京AABC12", false),   // 3 letters
            ("京a12345", false),   // lower case
            ("中A12345", false),   // not a province
            ("京A··12345", false),
            ("京A  12345", false),
            ("京A1234使", false),
            ("京", false),
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(is_valid_plate(s), ok, "{s}");
        }
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0x0_4eac);
        for _ in 0..2_000 {
            let v = gen::plate(&mut rng);
            assert!(is_valid_plate(&v), "{v}");
            let (why, bad) = gen::plate_near_miss(&mut rng);
            assert!(!is_valid_plate(&bad), "{why}: {bad}");
        }
    }

    #[test]
    fn province_characters_are_three_bytes() {
        assert!(PLATE_PROVINCES.iter().all(|p| p.len() == 3));
        assert!(SUFFIXES.iter().all(|p| p.len() == 3));
    }
}
