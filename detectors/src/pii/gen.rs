//! Deterministic generators of valid values, near misses and noise, for the
//! validators' tests and the precision/recall corpus. Test-only: nothing
//! here is built into the crate. Every near-miss generator checks its own
//! output against the validator and tries again, so a near miss is never
//! accidentally valid.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use super::bank_card::luhn_valid;
use super::credit_code::{check_char as credit_check, CREDIT_CODE_CHARSET};
use super::id_number::check_char as id_check;
use super::plate::PLATE_PROVINCES;
use super::*;

/// The latest birth year in tests (so that they do not depend on the clock).
pub(crate) const TEST_YEAR: u16 = 2025;

/// xorshift64*: deterministic, so a failure reproduces from its seed.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        if self.0 == 0 {
            self.0 = 0x9e37_79b9_7f4a_7c15;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }

    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| self.digit()).collect()
    }

    fn other_digit(&mut self, d: u8) -> u8 {
        let mut c = d;
        while c == d {
            c = b'0' + self.below(10) as u8;
        }
        c
    }
}

type NearMiss = (&'static str, String);

// ---------------------------------------------------------------- ID numbers

const ID_PROVINCES: [u64; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];
const BAD_PROVINCES: [u64; 20] = [
    0, 10, 16, 19, 20, 24, 30, 38, 39, 40, 47, 49, 55, 60, 66, 70, 72, 80, 84, 99,
];

#[allow(clippy::manual_is_multiple_of)] // rust-version 1.80
fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn date(rng: &mut Rng, from: u64, to: u64) -> (u64, u64, u64) {
    let y = rng.range(from, to);
    let m = rng.range(1, 12);
    (y, m, rng.range(1, days_in_month(y, m)))
}

fn id_region(rng: &mut Rng) -> String {
    format!("{:02}{:04}", rng.pick(&ID_PROVINCES), rng.range(1, 9999))
}

fn with_id_check(body: String, rng: &mut Rng) -> String {
    let c = char::from(id_check(body.as_bytes()));
    let c = if c == 'X' && rng.chance(30) { 'x' } else { c };
    format!("{body}{c}")
}

fn id18(rng: &mut Rng) -> String {
    let region = if rng.chance(3) {
        rng.pick(&["810000", "820000", "830000"]).to_string()
    } else {
        id_region(rng)
    };
    let (y, m, d) = date(rng, 1900, 2020);
    let body = format!("{region}{y:04}{m:02}{d:02}{}", rng.digits(3));
    with_id_check(body, rng)
}

/// A valid ID number: 18 characters, or (10%) the legacy 15 digits.
pub(crate) fn id_number(rng: &mut Rng) -> String {
    if rng.chance(10) {
        let (y, m, d) = date(rng, 1900, 1999);
        format!(
            "{}{:02}{m:02}{d:02}{}",
            id_region(rng),
            y % 100,
            rng.digits(3)
        )
    } else {
        id18(rng)
    }
}

pub(crate) fn id_number_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let valid = id18(rng);
        let (why, s) = match rng.below(5) {
            0 => {
                let mut b = valid.into_bytes();
                let i = rng.below(17) as usize;
                b[i] = rng.other_digit(b[i]);
                ("one digit changed", String::from_utf8(b).unwrap())
            }
            1 => {
                let (body, check) = valid.split_at(17);
                let mut c = check.to_ascii_uppercase();
                while c.eq_ignore_ascii_case(check) {
                    c = rng
                        .pick(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "X"])
                        .into();
                }
                ("wrong check digit", format!("{body}{c}"))
            }
            2 => {
                let (y, m, d) = rng.pick(&[
                    (1899, 12, 31),
                    (2999, 1, 1),
                    (1990, 0, 10),
                    (1990, 13, 10),
                    (1990, 5, 0),
                    (1990, 5, 32),
                    (1990, 4, 31),
                    (1990, 2, 30),
                    (1999, 2, 29),
                    (1900, 2, 29),
                ]);
                let body = format!("{}{y:04}{m:02}{d:02}{}", id_region(rng), rng.digits(3));
                ("bad birth date", with_id_check(body, rng))
            }
            3 => {
                let region = if rng.chance(70) {
                    format!("{:02}{:04}", rng.pick(&BAD_PROVINCES), rng.range(1, 9999))
                } else {
                    format!("{:02}0000", rng.pick(&ID_PROVINCES[..31]))
                };
                let (y, m, d) = date(rng, 1900, 2020);
                let body = format!("{region}{y:04}{m:02}{d:02}{}", rng.digits(3));
                ("bad region", with_id_check(body, rng))
            }
            _ => {
                let mut s = valid;
                let i = rng.below(17) as usize;
                if rng.chance(50) {
                    s.remove(i);
                } else {
                    s.insert(i, rng.digit());
                }
                ("wrong length", s)
            }
        };
        if id_number::parse(s.as_bytes(), TEST_YEAR).is_none() {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- phones

fn mobile(rng: &mut Rng) -> String {
    format!("1{}{}", rng.range(3, 9), rng.digits(9))
}

/// A valid mobile number in one of the written forms.
pub(crate) fn phone(rng: &mut Rng) -> String {
    let d = mobile(rng);
    let (a, b, c) = (&d[..3], &d[3..7], &d[7..]);
    match rng.below(9) {
        0..=2 => d,
        3 => format!("+86{d}"),
        4 => format!("+86 {a} {b} {c}"),
        5 => format!("0086-{d}"),
        6 => format!("86{d}"),
        7 => format!("{a}-{b}-{c}"),
        _ => format!("{a} {b} {c}"),
    }
}

pub(crate) fn phone_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let d = mobile(rng);
        let (why, s) = match rng.below(5) {
            0 => ("prefix 10-12", format!("1{}{}", rng.range(0, 2), &d[2..])),
            1 => (
                "not starting with 1",
                format!("{}{}", rng.range(2, 9), &d[1..]),
            ),
            2 => ("10 digits", d[..10].to_string()),
            3 => ("12 digits", format!("{d}{}", rng.digit())),
            _ => (
                "4-3-4 grouping",
                format!("{}-{}-{}", &d[..4], &d[4..7], &d[7..]),
            ),
        };
        if !is_valid_phone(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- cards

fn luhn_complete(body: &str) -> String {
    (b'0'..=b'9')
        .map(|c| format!("{body}{}", char::from(c)))
        .find(|s| luhn_valid(s.as_bytes()))
        .unwrap()
}

fn card_digits(rng: &mut Rng) -> String {
    let (prefix, len) = match rng.below(20) {
        0..=11 => (
            format!("62{}", rng.digits(4)),
            rng.pick(&[16, 16, 16, 16, 19, 19, 19, 17, 18]),
        ),
        12 | 13 => (format!("4{}", rng.digits(5)), 16),
        14 => (format!("5{}{}", rng.range(1, 5), rng.digits(4)), 16),
        15 => (format!("{}{}", rng.range(2221, 2720), rng.digits(2)), 16),
        16 => (format!("35{}{}", rng.range(28, 89), rng.digits(2)), 16),
        17 => (format!("9558{}", rng.digits(2)), 19),
        18 => (format!("95599{}", rng.digit()), 19),
        _ => (format!("6{}{}", rng.pick(&[0, 5]), rng.digits(4)), 16),
    };
    let body = format!("{prefix}{}", rng.digits(len - 1 - prefix.len()));
    luhn_complete(&body)
}

fn group4(d: &str, sep: char) -> String {
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// A valid card number, plain or grouped by four.
pub(crate) fn bank_card(rng: &mut Rng) -> String {
    let d = card_digits(rng);
    match rng.below(20) {
        0..=11 => d,
        12..=16 => group4(&d, ' '),
        _ => group4(&d, '-'),
    }
}

pub(crate) fn bank_card_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let valid = card_digits(rng);
        let (why, s) = match rng.below(4) {
            0 => {
                let mut b = valid.into_bytes();
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.other_digit(b[i]);
                ("one digit changed", String::from_utf8(b).unwrap())
            }
            1 => {
                let len = rng.pick(&[13, 14, 15, 20, 21]);
                let body = format!("62{}", rng.digits(len - 3));
                ("wrong length", luhn_complete(&body))
            }
            2 => {
                let len = rng.pick(&[16, 19]);
                let body = format!("{}{}", rng.pick(&[0, 1, 7, 8]), rng.digits(len - 2));
                ("wrong prefix", luhn_complete(&body))
            }
            _ => {
                let len = rng.pick(&[17, 18]);
                let body = format!("{}{}", rng.pick(&[3, 4, 5]), rng.digits(len - 2));
                ("17/18 digits, not UnionPay", luhn_complete(&body))
            }
        };
        if !is_valid_bank_card(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- credit codes

const AUTHORITY_TYPES: [(char, &str); 12] = [
    ('1', "1239"),
    ('2', "19"),
    ('3', "123459"),
    ('4', "19"),
    ('5', "1239"),
    ('6', "129"),
    ('7', "129"),
    ('8', "19"),
    ('9', "123"),
    ('A', "19"),
    ('N', "1239"),
    ('Y', "1"),
];

fn charset_char(rng: &mut Rng) -> char {
    char::from(rng.pick(CREDIT_CODE_CHARSET))
}

fn credit_body(rng: &mut Rng, authority: char, kind: char) -> String {
    let province = if rng.chance(5) {
        10
    } else {
        rng.pick(&ID_PROVINCES[..31])
    };
    let division = if province == 10 {
        "100000".to_string()
    } else {
        format!("{province:02}{:04}", rng.range(0, 9999))
    };
    let org: String = (0..9).map(|_| charset_char(rng)).collect();
    format!("{authority}{kind}{division}{org}")
}

fn with_credit_check(body: String) -> String {
    let c = credit_check(body.as_bytes()).map_or('0', char::from);
    format!("{body}{c}")
}

/// A valid unified social credit code (real authority/type pairs weighted
/// toward enterprises, as in real data).
pub(crate) fn credit_code(rng: &mut Rng) -> String {
    let (authority, types) = if rng.chance(60) {
        ('9', "123")
    } else {
        rng.pick(&AUTHORITY_TYPES)
    };
    let kind = char::from(rng.pick(types.as_bytes()));
    with_credit_check(credit_body(rng, authority, kind))
}

pub(crate) fn credit_code_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let valid = credit_code(rng);
        let (why, s) = match rng.below(6) {
            0 => {
                let mut b = valid.into_bytes();
                let i = rng.range(8, 16) as usize;
                let old = b[i];
                while b[i] == old {
                    b[i] = rng.pick(CREDIT_CODE_CHARSET);
                }
                ("one character changed", String::from_utf8(b).unwrap())
            }
            1 => {
                let (body, check) = valid.split_at(17);
                let mut c = check.to_string();
                while c == check {
                    c = charset_char(rng).to_string();
                }
                ("wrong check character", format!("{body}{c}"))
            }
            2 => {
                let mut b = valid.into_bytes();
                let i = rng.range(8, 16) as usize;
                b[i] = rng.pick(b"IOZSV");
                ("letter outside the charset", String::from_utf8(b).unwrap())
            }
            3 => {
                let mut s = valid;
                let i = rng.range(2, 16) as usize;
                if rng.chance(50) {
                    s.remove(i);
                } else {
                    s.insert(i, charset_char(rng));
                }
                ("wrong length", s)
            }
            4 => {
                let a = rng.pick(&['0', 'B', 'C', 'G']);
                ("bad authority", with_credit_check(credit_body(rng, a, '1')))
            }
            _ => {
                let t = rng.pick(&['0', '4', '5', '8', 'A']);
                (
                    "bad type for authority 9",
                    with_credit_check(credit_body(rng, '9', t)),
                )
            }
        };
        if !is_valid_credit_code(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- e-mail

const DOMAINS: [&str; 14] = [
    "163.com",
    "126.com",
    "qq.com",
    "sina.com",
    "gmail.com",
    "outlook.com",
    "foxmail.com",
    "yeah.net",
    "sohu.com",
    "gov.cn",
    "beijing.gov.cn",
    "mail.example.org",
    "edu.cn",
    "pku.edu.cn",
];

fn word(rng: &mut Rng, lo: u64, hi: u64) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let n = rng.range(lo, hi);
    (0..n).map(|_| char::from(rng.pick(ALNUM))).collect()
}

fn local_part(rng: &mut Rng) -> String {
    if rng.chance(15) {
        let n = rng.range(4, 10) as usize;
        return format!("{}{}", rng.range(1, 9), rng.digits(n));
    }
    let mut s = word(rng, 1, 8);
    for _ in 0..rng.below(3) {
        s.push(rng.pick(&['.', '_', '-']));
        s.push_str(&word(rng, 1, 8));
    }
    if rng.chance(10) {
        let _ = write!(s, "+{}", word(rng, 1, 5));
    }
    s
}

fn domain(rng: &mut Rng) -> String {
    if rng.chance(80) {
        rng.pick(&DOMAINS).to_string()
    } else {
        let tld = rng.pick(&["com", "cn", "net", "org", "com.cn", "gov.cn"]);
        format!("{}-{}.{tld}", word(rng, 1, 8), word(rng, 1, 8))
    }
}

/// A valid e-mail address.
pub(crate) fn email(rng: &mut Rng) -> String {
    format!("{}@{}", local_part(rng), domain(rng))
}

pub(crate) fn email_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let (l, d) = (word(rng, 2, 8), domain(rng));
        let w = word(rng, 1, 6);
        let (why, s) = match rng.below(8) {
            0 => ("double dot", format!("{l}..{w}@{d}")),
            1 => ("leading dot", format!(".{l}@{d}")),
            2 => ("dot before @", format!("{l}.@{d}")),
            3 => ("one-label domain", format!("{l}@{w}")),
            4 => ("digit in the TLD", format!("{l}@{w}.c{}m", rng.digit())),
            5 => ("label starts with -", format!("{l}@-{w}.com")),
            6 => ("two @", format!("{l}@@{d}")),
            _ => ("no @", format!("{l}.{d}")),
        };
        if !is_valid_email(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- passports and permits

fn serial_letter(rng: &mut Rng) -> char {
    char::from(rng.pick(b"ABCDEFGHJKLMNPQRSTUVWXYZ"))
}

/// A valid PRC passport number.
pub(crate) fn passport(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => format!("E{}", rng.digits(8)),
        5 | 6 => format!("E{}{}", serial_letter(rng), rng.digits(7)),
        7 | 8 => format!("G{}", rng.digits(8)),
        _ => format!("{}{}", rng.pick(&['D', 'S', 'P']), rng.digits(7)),
    }
}

/// A valid travel permit number.
pub(crate) fn travel_permit(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => format!("C{}", rng.digits(8)),
        5..=7 => format!("C{}{}", serial_letter(rng), rng.digits(7)),
        _ => format!("W{}", rng.digits(8)),
    }
}

fn document_near_miss(rng: &mut Rng, letters: [char; 2]) -> (&'static str, String) {
    let l = rng.pick(&letters);
    match rng.below(5) {
        0 => ("7 digits", format!("{l}{}", rng.digits(7))),
        1 => ("9 digits", format!("{l}{}", rng.digits(9))),
        2 => (
            "serial letter I/O",
            format!("{l}{}{}", rng.pick(&['I', 'O']), rng.digits(7)),
        ),
        3 => (
            "lower case",
            format!("{}{}", l.to_ascii_lowercase(), rng.digits(8)),
        ),
        _ => (
            "wrong letter",
            format!(
                "{}{}",
                rng.pick(&['A', 'B', 'H', 'K', 'M', 'Z']),
                rng.digits(8)
            ),
        ),
    }
}

pub(crate) fn passport_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let (why, s) = document_near_miss(rng, ['E', 'G']);
        if !is_valid_passport(&s) && !is_valid_travel_permit(&s) {
            return (why, s);
        }
    }
}

pub(crate) fn travel_permit_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let (why, s) = document_near_miss(rng, ['C', 'W']);
        if !is_valid_passport(&s) && !is_valid_travel_permit(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- IP addresses

fn ipv4(rng: &mut Rng) -> [u64; 4] {
    [
        rng.below(256),
        rng.below(256),
        rng.below(256),
        rng.below(256),
    ]
}

/// A valid IPv4 (60%) or IPv6 address in its canonical text form.
pub(crate) fn ip(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=5 => {
            let [a, b, c, d] = ipv4(rng);
            format!("{a}.{b}.{c}.{d}")
        }
        n => {
            let mut g = [0u16; 8];
            for x in &mut g {
                *x = rng.below(1 << 16) as u16;
            }
            if n >= 8 {
                // a run of zero groups, shown as `::`
                let from = rng.below(8) as usize;
                let to = rng.range(from as u64, 8) as usize;
                g[from..to].fill(0);
                // `::` alone is not reported (see scan.rs): keep one group.
                if g == [0; 8] {
                    g[7] = 1;
                }
            }
            Ipv6Addr::from(g).to_string()
        }
    }
}

pub(crate) fn ip_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let [a, b, c, d] = ipv4(rng);
        let (why, s) = match rng.below(7) {
            0 => (
                "octet over 255",
                format!("{a}.{b}.{}.{d}", rng.range(256, 999)),
            ),
            1 => ("three parts", format!("{a}.{b}.{c}")),
            2 => ("five parts", format!("{a}.{b}.{c}.{d}.{}", rng.below(256))),
            3 => ("leading zero", format!("{a}.0{}.{c}.{d}", rng.range(1, 9))),
            4 => (
                "two ::",
                format!("2001:db8::{:x}::{:x}", rng.below(65536), rng.below(65536)),
            ),
            5 => {
                let g: Vec<String> = (0..9).map(|_| format!("{:x}", rng.below(65536))).collect();
                ("nine groups", g.join(":"))
            }
            _ => (
                "five hex digits",
                format!("2001:db8:{:x}::1", rng.range(0x10000, 0xfffff)),
            ),
        };
        if !is_valid_ip(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- plates

fn plate_tail_char(rng: &mut Rng, letter: bool) -> char {
    if letter {
        serial_letter(rng)
    } else {
        rng.digit()
    }
}

/// A valid licence plate.
pub(crate) fn plate(rng: &mut Rng) -> String {
    let p = rng.pick(&PLATE_PROVINCES);
    let a = serial_letter(rng);
    let sep = rng.pick(&["", "", "·", " "]);
    let tail: String = match rng.below(10) {
        0..=5 => {
            let letters = rng.below(3);
            let mut t: Vec<char> = (0..5).map(|i| plate_tail_char(rng, i < letters)).collect();
            for i in (1..t.len()).rev() {
                t.swap(i, rng.below(i as u64 + 1) as usize);
            }
            t.into_iter().collect()
        }
        6 | 7 => {
            let kind = char::from(rng.pick(b"ABCDEFGHJK"));
            let letter = rng.chance(30);
            let second = plate_tail_char(rng, letter);
            format!("{kind}{second}{}", rng.digits(4))
        }
        8 => format!("{}{}", rng.digits(5), rng.pick(&['D', 'F'])),
        _ => {
            let letter = rng.chance(30);
            let t: String = (0..4)
                .map(|i| plate_tail_char(rng, i == 0 && letter))
                .collect();
            format!("{t}{}", rng.pick(&["学", "警", "港", "澳", "挂"]))
        }
    };
    format!("{p}{a}{sep}{tail}")
}

pub(crate) fn plate_near_miss(rng: &mut Rng) -> NearMiss {
    loop {
        let valid = plate(rng);
        let p = rng.pick(&PLATE_PROVINCES);
        let (why, s) = match rng.below(6) {
            0 => {
                let rest = valid.get(3..).unwrap_or_default();
                let c = rng.pick(&["中", "北", "上", "广", "深", "国"]);
                ("not a province", format!("{c}{rest}"))
            }
            1 => (
                "authority I/O",
                format!("{p}{}{}", rng.pick(&['I', 'O']), rng.digits(5)),
            ),
            2 => {
                let d = rng.digits(4);
                let i = rng.below(5) as usize;
                let mut t: Vec<char> = d.chars().collect();
                t.insert(i, rng.pick(&['I', 'O']));
                let t: String = t.into_iter().collect();
                ("I/O in the tail", format!("{p}A{t}"))
            }
            3 => {
                let n = rng.pick(&[3, 4, 7]);
                ("tail length", format!("{p}B{}", rng.digits(n)))
            }
            4 => (
                "6-character tail, not new energy",
                format!("{p}C{}{}", rng.digits(5), rng.range(0, 9)),
            ),
            _ => ("lower case", format!("{p}a{}", rng.digits(5))),
        };
        if !is_valid_plate(&s) {
            return (why, s);
        }
    }
}

// ---------------------------------------------------------------- noise

fn date8(rng: &mut Rng) -> String {
    let (y, m, d) = date(rng, 2000, 2025);
    format!("{y:04}{m:02}{d:02}")
}

/// A value that holds no sensitive data but looks like some: digit strings,
/// order numbers, timestamps, 12-digit phone-likes, UUIDs, prices.
pub(crate) fn noise(rng: &mut Rng) -> (&'static str, String) {
    match rng.below(7) {
        0 | 1 => {
            let n = rng.range(6, 20) as usize;
            ("random digits", rng.digits(n))
        }
        2 => {
            let prefix = rng.pick(&["", "DD", "NO", "SO", "ORD-"]);
            let n = rng.range(4, 10) as usize;
            (
                "order number",
                format!("{prefix}{}{}", date8(rng), rng.digits(n)),
            )
        }
        3 => {
            let (h, mi, s) = (rng.below(24), rng.below(60), rng.below(60));
            let d = date8(rng);
            let t = match rng.below(4) {
                0 => format!("{d}{h:02}{mi:02}{s:02}"),
                1 => format!("{}-{}-{} {h:02}:{mi:02}:{s:02}", &d[..4], &d[4..6], &d[6..]),
                2 => format!(
                    "{}-{}-{}T{h:02}:{mi:02}:{s:02}.{}Z",
                    &d[..4],
                    &d[4..6],
                    &d[6..],
                    rng.digits(3)
                ),
                _ => format!("17{}", rng.digits(11)),
            };
            ("timestamp", t)
        }
        4 => (
            "12-digit phone-like",
            format!("1{}{}", rng.range(3, 9), rng.digits(10)),
        ),
        5 => {
            let h = |rng: &mut Rng, n: usize| -> String {
                (0..n)
                    .map(|_| char::from(rng.pick(b"0123456789abcdef")))
                    .collect()
            };
            let u = format!(
                "{}-{}-{}-{}-{}",
                h(rng, 8),
                h(rng, 4),
                h(rng, 4),
                h(rng, 4),
                h(rng, 12)
            );
            ("uuid", u)
        }
        _ => {
            let (yuan, fen) = (rng.range(1, 9_999_999), rng.below(100));
            let p = match rng.below(3) {
                0 => format!("¥{yuan}.{fen:02}"),
                1 => format!("{yuan}.{fen:02}元"),
                _ => format!("{},{:03}.{fen:02}", yuan / 1000, yuan % 1000),
            };
            ("price", p)
        }
    }
}

/// Free-text settings a value may appear in. None of them holds anything
/// sensitive, and the placeholder is never next to an ASCII letter, digit
/// or e-mail character (that would change what the value is).
const TEMPLATES: [&str; 10] = [
    "{}",
    "{}",
    "{}",
    "  {}  ",
    "值：{}",
    "客户 张三 {} 已登记",
    "备注({})",
    "“{}”",
    "记录{}，请核对。",
    "data: {} ;",
];

/// `value`, alone or in a line of free text.
pub(crate) fn embed(rng: &mut Rng, value: &str) -> String {
    rng.pick(&TEMPLATES).replacen("{}", value, 1)
}

#[test]
fn generators_are_deterministic() {
    let run = |seed| {
        let mut r = Rng(seed);
        (0..50)
            .map(|_| format!("{}{}{}", id_number(&mut r), email(&mut r), noise(&mut r).1))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
