//! PRC resident identity numbers (公民身份号码). Owns the format check and
//! nothing else: no I/O beyond reading the clock for "this year", no panics
//! on any input.
//!
//! Accepted (GB 11643-1999 *Citizen identification number*):
//!
//! * **18 characters**: a 6-digit address code, an 8-digit birth date
//!   `YYYYMMDD`, a 3-digit sequence number and one check character. The
//!   check character is ISO 7064 MOD 11-2: the 17 digits weighted
//!   `7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2` (2^(17-i) mod 11), summed, mod 11,
//!   mapped `0→1 1→0 2→X 3→9 … 10→2`; `X` may be written `x`. Every
//!   single-digit substitution and most transpositions change the check.
//! * **15 digits** (legacy cards, issued until 1999): address code, birth
//!   date `YYMMDD` read as `19YY`, sequence number, no check digit.
//!
//! Both forms also need a plausible address code and a real birth date:
//!
//! * the first two digits are a GB/T 2260 province-level code (11–15,
//!   21–23, 31–37, 41–46, 50–54, 61–65, 71, 81, 82) and the next four are
//!   not `0000` (a province itself issues no numbers). The exception is the
//!   whole code `810000`, `820000` or `830000`: the residence permits for
//!   Hong Kong, Macao and Taiwan residents (港澳台居民居住证, 2018) carry
//!   an 18-character number of this same format with those codes, and they
//!   are as sensitive as an ID number. Finer GB/T 2260 checks (prefecture,
//!   county) are deliberately absent: codes are retired and reassigned, and
//!   a number stays valid for life after its county is renamed.
//! * the birth date is a calendar date (leap years included) in the years
//!   1900 to the current year: earlier years are not on any living
//!   person's card (GB 11643's own worked example, born 1880, is rejected).

use std::time::{SystemTime, UNIX_EPOCH};

/// Earliest accepted birth year.
pub const MIN_BIRTH_YEAR: u16 = 1900;

/// The year used when the clock is unreadable or set before this code was
/// written: a wrong clock must not reject recent births.
const FLOOR_YEAR: u16 = 2025;

/// China Standard Time is UTC+8: the year turns at midnight in Beijing.
const CST_OFFSET_SECS: u64 = 8 * 3600;

/// GB 11643-1999 weights of the 17 body digits.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character for each weighted sum mod 11.
const CHECK: [u8; 11] = *b"10X98765432";

/// GB/T 2260 province-level codes (first two digits of an address code).
const PROVINCES: [u32; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// Whole address codes of the Hong Kong, Macao and Taiwan residence permits.
const PERMIT_REGIONS: [u32; 3] = [810_000, 820_000, 830_000];

/// The parts of a valid identity number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdNumber {
    /// The 6-digit GB/T 2260 address code (`110105`).
    pub region: u32,
    pub birth_year: u16,
    pub birth_month: u8,
    pub birth_day: u8,
    /// The 15-digit pre-1999 form (no check digit, weaker evidence).
    pub legacy: bool,
}

/// Whether `s` is exactly a valid identity number (18 or 15 characters,
/// nothing around it), with births up to the current year.
pub fn is_valid_id_number(s: &str) -> bool {
    parse_id_number(s).is_some()
}

/// Parses `s` as an identity number, with births up to the current year.
pub fn parse_id_number(s: &str) -> Option<IdNumber> {
    parse(s.as_bytes(), current_year())
}

/// Parses `s` as an identity number with births up to `max_birth_year`:
/// the deterministic form, for tests and for a caller with its own clock.
pub fn parse_id_number_until(s: &str, max_birth_year: u16) -> Option<IdNumber> {
    parse(s.as_bytes(), max_birth_year)
}

pub(crate) fn parse(b: &[u8], max_year: u16) -> Option<IdNumber> {
    match b.len() {
        18 => parse18(b, max_year),
        15 => parse15(b),
        _ => None,
    }
}

fn parse18(b: &[u8], max_year: u16) -> Option<IdNumber> {
    let (body, check) = b.split_at(17);
    let id = layout18(body, max_year)?;
    let sum: u32 = body.iter().zip(WEIGHTS).map(|(&d, w)| digit(d) * w).sum();
    let want = CHECK.get((sum % 11) as usize)?;
    (check.first()?.to_ascii_uppercase() == *want).then_some(id)
}

fn parse15(b: &[u8]) -> Option<IdNumber> {
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let region = region(b.get(..6)?)?;
    let year = 1900 + number(b.get(6..8)?);
    let (month, day) = (number(b.get(8..10)?), number(b.get(10..12)?));
    // 19YY is never after the current year.
    valid_date(year, month, day, u16::MAX).then_some(IdNumber {
        region,
        birth_year: year as u16,
        birth_month: month as u8,
        birth_day: day as u8,
        legacy: true,
    })
}

/// Address code and birth date of an 18-character number's 17-digit body,
/// without the check: the shape of an ID number.
fn layout18(body: &[u8], max_year: u16) -> Option<IdNumber> {
    if body.len() != 17 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let region = region(body.get(..6)?)?;
    let year = number(body.get(6..10)?);
    let (month, day) = (number(body.get(10..12)?), number(body.get(12..14)?));
    valid_date(year, month, day, max_year).then_some(IdNumber {
        region,
        birth_year: year as u16,
        birth_month: month as u8,
        birth_day: day as u8,
        legacy: false,
    })
}

/// Whether an 18-character run has the layout of an identity number (a
/// plausible address code and birth date) whatever its check character.
/// The scanner reports such a run as nothing rather than as a bank card or
/// credit code when its check fails: a mistyped ID number is far more
/// common than an 18-digit card that happens to look like one.
pub(crate) fn has_layout(b: &[u8], max_year: u16) -> bool {
    b.len() == 18
        && b.get(..17)
            .is_some_and(|body| layout18(body, max_year).is_some())
}

// `u32::is_multiple_of` is newer than the workspace's rust-version (1.80).
#[allow(clippy::manual_is_multiple_of)]
fn region(code: &[u8]) -> Option<u32> {
    let whole = number(code);
    let province = whole / 10_000;
    let ok = (is_province(province) && whole % 10_000 != 0) || PERMIT_REGIONS.contains(&whole);
    ok.then_some(whole)
}

/// [`PROVINCES`] as a bit set (every code is below 100): one test instead
/// of 34 comparisons on every 15- and 18-digit number the scanner meets.
const PROVINCE_BITS: u128 = {
    let mut bits = 0u128;
    let mut i = 0;
    while i < PROVINCES.len() {
        bits |= 1 << PROVINCES[i];
        i += 1;
    }
    bits
};

fn is_province(code: u32) -> bool {
    code < u128::BITS && PROVINCE_BITS & (1 << code) != 0
}

pub(crate) fn valid_date(year: u32, month: u32, day: u32, max_year: u16) -> bool {
    (u32::from(MIN_BIRTH_YEAR)..=u32::from(max_year)).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
}

#[allow(clippy::manual_is_multiple_of)] // rust-version 1.80, as above
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digit(c: u8) -> u32 {
    u32::from(c.wrapping_sub(b'0'))
}

/// Decimal value of a short digit string (callers check the digits).
fn number(d: &[u8]) -> u32 {
    d.iter()
        .fold(0u32, |n, &c| n.wrapping_mul(10).wrapping_add(digit(c)))
}

/// The current year in China Standard Time, from the system clock; never
/// earlier than the year this code was written.
pub fn current_year() -> u16 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs.saturating_add(CST_OFFSET_SECS) / 86_400) as i64;
    year_of_day(days).max(FLOOR_YEAR)
}

/// Gregorian year of a day counted from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn year_of_day(days: i64) -> u16 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400 + i64::from(mp >= 10);
    u16::try_from(year).unwrap_or(FLOOR_YEAR)
}

/// The check character for a 17-digit body (test generators).
#[cfg(test)]
pub(crate) fn check_char(body: &[u8]) -> u8 {
    let sum: u32 = body.iter().zip(WEIGHTS).map(|(&d, w)| digit(d) * w).sum();
    CHECK[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng, TEST_YEAR};

    #[test]
    fn province_bits_are_the_province_list() {
        for code in 0..1_000 {
            assert_eq!(is_province(code), PROVINCES.contains(&code), "{code}");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            // GB 11643-1999's second example (its first is born 1880).
            ("11010519491231002X", true),
            ("11010519491231002x", true),
            ("110105194912310021", false), // wrong check digit
            ("440524188001010014", false), // the standard's example: born 1880
            ("11010519491231002", false),  // 17 characters
            ("11010519491231002XX", false),
            ("110105194902290026", false), // 1949 is not a leap year
            ("110105200002290021", true),  // 2000 is
            ("110105190002290025", false), // 1900 is not
            ("000105194912310021", false), // province 00
            ("110000194912310020", false), // a province, not a county
            ("810000199001010019", true),  // Hong Kong residents' permit
            ("830000199001010020", true),  // Taiwan residents' permit
            ("110105491231002", true),     // legacy 15-digit
            ("110105491331002", false),    // legacy, month 13
            ("11010519491231002Y", false),
            ("１１０１０５１９４９１２３１００２X", false), // full-width
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(parse_id_number_until(s, TEST_YEAR).is_some(), ok, "{s}");
        }
        let p = parse_id_number_until("11010519491231002X", TEST_YEAR).unwrap();
        assert_eq!(
            p,
            IdNumber {
                region: 110_105,
                birth_year: 1949,
                birth_month: 12,
                birth_day: 31,
                legacy: false
            }
        );
        assert!(
            parse_id_number_until("110105491231002", TEST_YEAR)
                .unwrap()
                .legacy
        );
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0x1d_2024);
        for _ in 0..2_000 {
            let v = gen::id_number(&mut rng);
            assert!(parse_id_number_until(&v, TEST_YEAR).is_some(), "{v}");
            let (why, bad) = gen::id_number_near_miss(&mut rng);
            assert!(
                parse_id_number_until(&bad, TEST_YEAR).is_none(),
                "{why}: {bad}"
            );
        }
    }

    #[test]
    fn every_single_digit_change_is_caught() {
        let good = b"11010519491231002X";
        for i in 0..17 {
            for d in b'0'..=b'9' {
                if d == good[i] {
                    continue;
                }
                let mut bad = *good;
                bad[i] = d;
                assert!(parse(&bad, TEST_YEAR).is_none(), "{i} {d}");
            }
        }
    }

    #[test]
    fn future_births_are_rejected() {
        assert!(parse_id_number_until("110105202001010015", 2019).is_none());
        assert!(parse_id_number_until("110105202001010015", 2020).is_some());
    }

    #[test]
    fn year_of_day_and_clock() {
        assert_eq!(year_of_day(0), 1970);
        assert_eq!(year_of_day(19_722), 2023); // 2023-12-31
        assert_eq!(year_of_day(19_723), 2024); // 2024-01-01
        assert_eq!(year_of_day(-1), 1969);
        assert!(current_year() >= FLOOR_YEAR);
    }

    #[test]
    fn layout_without_check() {
        assert!(has_layout(b"110105194912310021", TEST_YEAR));
        assert!(!has_layout(b"110105194913310021", TEST_YEAR));
        assert!(!has_layout(b"6222021234567890", TEST_YEAR));
    }
}
