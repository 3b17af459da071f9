//! The scanner as it was before the fast paths (candidate skipping, the
//! single-run shortcut, table-driven validators), kept verbatim as the
//! oracle of the differential test in `super::tests`: the fast scanner
//! must find exactly what this one finds. Test-only; never optimise it.
//!
//! The validators it calls that were rewritten for speed (Luhn, the
//! e-mail character classes) are copied here in their old form too.

use memchr::memchr;

use super::{Counts, Scanner};
use crate::pii::{credit_code, id_number, ip, passport, phone, plate, Kind};

/// The old [`Scanner::scan`].
pub(super) fn scan(scanner: &Scanner, value: &[u8], counts: &mut Counts) {
    if scanner.enabled == 0 {
        return;
    }
    let mut cursor = 0;
    let mut at_from = 0;
    loop {
        let email = next_email(value, cursor, &mut at_from);
        let segment_end = email.map_or(value.len(), |(start, _)| start);
        if let Some(segment) = value.get(..segment_end) {
            Pass {
                v: segment,
                scanner,
                counts,
            }
            .run(cursor);
        }
        match email {
            Some((_, end)) => {
                scanner.count(Kind::Email, counts);
                cursor = end;
            }
            None => return,
        }
    }
}

/// Most digit groups one written form spans: a 19-digit card in fours.
const MAX_GROUPS: usize = 5;
/// Room for the digits of the longest grouped form (19) and an ID's `X`.
const MAX_COMPACT: usize = 20;
/// A letter+digit run this long made only of hex digits is opaque.
const HEX_OPAQUE_MIN: usize = 16;

const OTHER: u8 = 0;
const DIGIT: u8 = 1;
const LETTER: u8 = 2;
const COLON: u8 = 3;
/// First byte of a 3-byte UTF-8 sequence in U+4000–U+9FFF, where all the
/// plate province characters are.
const CJK_LEAD: u8 = 4;

const CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'0'..=b'9' => DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' => LETTER,
            b':' => COLON,
            0xE4..=0xE9 => CJK_LEAD,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// The next valid e-mail address starting at or after `floor`, as a byte
/// span. `from` remembers where the search for `@` stopped, so every `@`
/// of a value is looked at once.
fn next_email(v: &[u8], floor: usize, from: &mut usize) -> Option<(usize, usize)> {
    let mut pos = (*from).max(floor);
    while let Some(off) = v.get(pos..).and_then(|rest| memchr(b'@', rest)) {
        let at = pos + off;
        pos = at + 1;
        if let Some(span) = email_at(v, floor, at) {
            *from = span.1;
            return Some(span);
        }
    }
    *from = v.len();
    None
}

/// The address around the `@` at `at`, if it is a valid one. Both scans
/// are bounded by the RFC 5321 lengths, so a value of many `@` costs
/// linear time.
fn email_at(v: &[u8], floor: usize, at: usize) -> Option<(usize, usize)> {
    let mut start = at;
    while start > floor && at - start <= email::MAX_LOCAL_LEN {
        match v.get(start - 1) {
            Some(&c) if c == b'.' || email::is_atext(c) => start -= 1,
            _ => break,
        }
    }
    if !email::valid_local(v.get(start..at)?) {
        return None;
    }
    let limit = at.saturating_add(1 + email::MAX_EMAIL_LEN).min(v.len());
    let mut end = at + 1;
    while end < limit && v.get(end).copied().is_some_and(email::is_domain_char) {
        end += 1;
    }
    if v.get(end).copied().is_some_and(email::is_domain_char) {
        return None; // longer than any address
    }
    while end > at + 1 && v.get(end - 1) == Some(&b'.') {
        end -= 1;
    }
    let ok = end - start <= email::MAX_EMAIL_LEN && email::valid_domain(v.get(at + 1..end)?);
    ok.then_some((start, end))
}

/// One digit run of a group sequence: digits `start..end`, then an `X` if
/// `x` (only after 17 digits, or 3 as the last part of `6-8-4`).
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    x: bool,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }

    fn token_end(&self) -> usize {
        self.end + usize::from(self.x)
    }

    fn plain(&self, digits: usize) -> bool {
        !self.x && self.len() == digits
    }
}

/// The scan of one segment (a value, or the part of it before an e-mail).
struct Pass<'a> {
    v: &'a [u8],
    scanner: &'a Scanner,
    counts: &'a mut Counts,
}

impl Pass<'_> {
    fn run(&mut self, mut i: usize) {
        let v = self.v;
        while let Some(&b) = v.get(i) {
            i = match CLASS[usize::from(b)] {
                DIGIT | LETTER => self.token(i),
                COLON if v.get(i + 1) == Some(&b':') && !prev_is(v, i, is_ipv6_char) => {
                    match ipv6_end(v, i) {
                        Some(end) => {
                            self.hit(Kind::Ip);
                            end
                        }
                        None => i + 1,
                    }
                }
                CJK_LEAD => self.plate(i),
                _ => i + 1,
            };
        }
    }

    fn hit(&mut self, kind: Kind) {
        self.scanner.count(kind, self.counts);
    }

    /// An alphanumeric run starting at `start` (a run boundary). Returns
    /// where scanning goes on, always past `start`.
    fn token(&mut self, start: usize) -> usize {
        let v = self.v;
        let (end, has_digit) = alnum_run(v, start);
        // An IPv6 candidate starts where a run of its characters starts:
        // the tail of an invalid address is not tried as an address.
        if v.get(end) == Some(&b':') && !prev_is(v, start, is_ipv6_char) {
            if let Some(e) = ipv6_end(v, start) {
                self.hit(Kind::Ip);
                return e;
            }
        }
        if !has_digit {
            return end;
        }
        let tok = v.get(start..end).unwrap_or_default();
        let lead = digit_run_end(tok, 0);
        if lead == tok.len() {
            if v.get(end) == Some(&b'.') && v.get(end + 1).is_some_and(u8::is_ascii_digit) {
                return self.dotted(start);
            }
            return self.groups(start);
        }
        if lead == 17 && lead + 1 == tok.len() {
            return self.groups(start); // 17 digits and X
        }
        self.mixed(tok);
        end
    }

    /// Digit runs joined by dots, starting at `start`: an IPv4 address if
    /// it is four parts of 1–3 digits, else skipped whole.
    fn dotted(&mut self, start: usize) -> usize {
        let v = self.v;
        let (mut parts, mut longest, mut i) = (0usize, 0usize, start);
        loop {
            let e = digit_run_end(v, i);
            parts += 1;
            longest = longest.max(e - i);
            if v.get(e) == Some(&b'.') && v.get(e + 1).is_some_and(u8::is_ascii_digit) {
                i = e + 1;
            } else {
                i = e;
                break;
            }
        }
        if v.get(i).is_some_and(u8::is_ascii_alphabetic) {
            return alnum_run(v, i).0; // `1.5kg`, `1.2.3.4a`: not an address
        }
        // `host.1.2.3.4` is a name, not an address.
        let after_name = prev_is(v, start, |c| c == b'.')
            && prev_is(v, start.saturating_sub(1), |c| c.is_ascii_alphanumeric());
        if parts == 4 && longest <= 3 && !after_name && v.get(start..i).is_some_and(ip::is_ipv4) {
            self.hit(Kind::Ip);
        }
        i
    }

    /// Digit groups from `first` (a numeric run): match written forms,
    /// longest first, until every group is consumed.
    fn groups(&mut self, mut first: usize) -> usize {
        loop {
            let mut buf = [Group::default(); MAX_GROUPS];
            let n = collect_groups(self.v, first, &mut buf);
            let gs = buf.get(..n).unwrap_or_default();
            let Some(last) = gs.last() else {
                return alnum_run(self.v, first).0.max(first + 1);
            };
            let (used, kind) = self.match_groups(gs);
            if let Some(kind) = kind {
                self.hit(kind);
            }
            match gs.get(used.max(1)) {
                Some(next) => first = next.start,
                None => return last.token_end(),
            }
        }
    }

    /// The written form at the start of `gs`: how many groups it takes
    /// (at least 1) and what it is.
    fn match_groups(&self, gs: &[Group]) -> (usize, Option<Kind>) {
        let v = self.v;
        let plain = |i: usize, n: usize| gs.get(i).is_some_and(|g| g.plain(n));
        let mut buf = [0u8; MAX_COMPACT];

        // A card in groups of four, the last group 1–4 digits.
        for k in (4..=gs.len()).rev() {
            let last_ok = gs
                .get(k - 1)
                .is_some_and(|g| !g.x && (1..=4).contains(&g.len()));
            if last_ok && (0..k - 1).all(|i| plain(i, 4)) {
                let d = compact(v, gs.get(..k).unwrap_or_default(), &mut buf);
                if self.card(d) {
                    return (k, Some(Kind::BankCard));
                }
            }
        }
        // A country code, then 11 digits or 3-4-4.
        let cc = gs
            .first()
            .and_then(|g| v.get(g.start..g.token_end()))
            .is_some_and(|d| d == b"86" || d == b"0086");
        if cc {
            if plain(1, 11) && gs.get(1).is_some_and(|g| self.mobile(g)) {
                return (2, Some(Kind::Phone));
            }
            if plain(1, 3) && plain(2, 4) && plain(3, 4) {
                let d = compact(v, gs.get(1..4).unwrap_or_default(), &mut buf);
                if phone::is_mobile(d) {
                    return (4, Some(Kind::Phone));
                }
            }
        }
        // A phone in 3-4-4.
        if plain(0, 3) && plain(1, 4) && plain(2, 4) {
            let d = compact(v, gs.get(..3).unwrap_or_default(), &mut buf);
            if phone::is_mobile(d) {
                return (3, Some(Kind::Phone));
            }
        }
        // An ID number in 6-8-4 (the last group may be 3 digits and X).
        let id_tail = gs
            .get(2)
            .is_some_and(|g| g.len() == if g.x { 3 } else { 4 });
        if plain(0, 6) && plain(1, 8) && id_tail {
            let d = compact(v, gs.get(..3).unwrap_or_default(), &mut buf);
            if id_number::parse(d, self.scanner.max_birth_year).is_some() {
                return (3, Some(Kind::IdNumber));
            }
        }
        // One run alone.
        let one = gs
            .first()
            .and_then(|g| v.get(g.start..g.token_end()))
            .and_then(|d| self.number(d));
        (1, one)
    }

    fn mobile(&self, g: &Group) -> bool {
        self.v.get(g.start..g.end).is_some_and(phone::is_mobile)
    }

    fn card(&self, d: &[u8]) -> bool {
        bank_card::is_card_digits(d) && !id_number::has_layout(d, self.scanner.max_birth_year)
    }

    /// What a whole digit run (an ID's trailing `X` included) is.
    fn number(&self, d: &[u8]) -> Option<Kind> {
        let max_year = self.scanner.max_birth_year;
        match d.len() {
            18 => {
                if id_number::parse(d, max_year).is_some() {
                    Some(Kind::IdNumber)
                } else if id_number::has_layout(d, max_year) {
                    None // a mistyped ID number
                } else if d.starts_with(b"62") && bank_card::is_card_digits(d) {
                    // UnionPay: far commoner than a credit code of the
                    // tourism authority (6) for overseas offices (2).
                    Some(Kind::BankCard)
                } else if credit_code::is_credit_code(d) {
                    Some(Kind::CreditCode)
                } else {
                    bank_card::is_card_digits(d).then_some(Kind::BankCard)
                }
            }
            15 => {
                if id_number::parse(d, max_year).is_some() {
                    Some(Kind::IdNumber)
                } else {
                    d.strip_prefix(b"0086")
                        .is_some_and(phone::is_mobile)
                        .then_some(Kind::Phone)
                }
            }
            13 => d
                .strip_prefix(b"86")
                .is_some_and(phone::is_mobile)
                .then_some(Kind::Phone),
            11 => phone::is_mobile(d).then_some(Kind::Phone),
            16 | 17 | 19 => bank_card::is_card_digits(d).then_some(Kind::BankCard),
            _ => None,
        }
    }

    /// A run of letters and digits: a code matched whole, else its digit
    /// runs alone (unless it is a long hex string).
    fn mixed(&mut self, tok: &[u8]) {
        let kind = match tok.len() {
            18 if credit_code::is_credit_code(tok) => Some(Kind::CreditCode),
            8 | 9 if passport::is_passport(tok) => Some(Kind::Passport),
            9 if passport::is_travel_permit(tok) => Some(Kind::TravelPermit),
            _ => None,
        };
        if let Some(kind) = kind {
            self.hit(kind);
            return;
        }
        if tok.len() >= HEX_OPAQUE_MIN && tok.iter().all(u8::is_ascii_hexdigit) {
            return;
        }
        // Only a label around one number (`tel13812345678`,
        // `ID11010519491231002X`, `13812345678abc`): letters, one digit
        // run, letters. Codes that interleave letters and digits
        // (`G14552641527HR3HMT`) are opaque.
        let i = tok.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        let mut j = digit_run_end(tok, i);
        if !tok
            .get(j..)
            .unwrap_or_default()
            .iter()
            .all(u8::is_ascii_alphabetic)
        {
            return;
        }
        if j - i == 17 && j + 1 == tok.len() && tok.get(j).copied().is_some_and(is_x) {
            j += 1;
        }
        if let Some(kind) = tok.get(i..j).and_then(|d| self.number(d)) {
            self.hit(kind);
        }
    }

    /// A plate at the CJK lead byte `i`, if the byte after the character
    /// is a capital letter (the cheap filter) and the plate validates.
    fn plate(&mut self, i: usize) -> usize {
        let v = self.v;
        if v.get(i + 3).is_some_and(u8::is_ascii_uppercase) {
            if let Some(len) = v.get(i..).and_then(plate::plate_len) {
                self.hit(Kind::Plate);
                return i + len;
            }
        }
        i + 1
    }
}

/// Groups from `first` into `out`: the run at `first`, then runs after one
/// space or dash each, while they are whole numeric runs not followed by a
/// colon or a decimal point. Returns how many.
fn collect_groups(v: &[u8], first: usize, out: &mut [Group; MAX_GROUPS]) -> usize {
    let Some(g0) = read_group(v, first) else {
        return 0;
    };
    out[0] = g0;
    let mut n = 1;
    while n < MAX_GROUPS {
        let te = out[n - 1].token_end();
        let joined =
            matches!(v.get(te), Some(b' ' | b'-')) && v.get(te + 1).is_some_and(u8::is_ascii_digit);
        if !joined {
            break;
        }
        let Some(g) = read_group(v, te + 1) else {
            break;
        };
        let after = g.token_end();
        let stop = v.get(after) == Some(&b':')
            || (v.get(after) == Some(&b'.') && v.get(after + 1).is_some_and(u8::is_ascii_digit));
        if stop {
            break;
        }
        out[n] = g;
        n += 1;
    }
    n
}

/// A whole numeric run at `s`: digits, an optional `X` after 17 or 3 of
/// them, and no letter or digit after.
fn read_group(v: &[u8], s: usize) -> Option<Group> {
    let end = digit_run_end(v, s);
    let len = end - s;
    if len == 0 {
        return None;
    }
    let x = (len == 17 || len == 3)
        && v.get(end).copied().is_some_and(is_x)
        && !v.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
    let g = Group { start: s, end, x };
    (!v.get(g.token_end()).is_some_and(u8::is_ascii_alphanumeric)).then_some(g)
}

/// The digits (and `X`) of `gs` into `buf`; empty if they do not fit (no
/// written form is that long).
fn compact<'b>(v: &[u8], gs: &[Group], buf: &'b mut [u8; MAX_COMPACT]) -> &'b [u8] {
    let mut n = 0;
    for g in gs {
        for &c in v.get(g.start..g.token_end()).unwrap_or_default() {
            match buf.get_mut(n) {
                Some(slot) => *slot = c,
                None => return &[],
            }
            n += 1;
        }
    }
    buf.get(..n).unwrap_or_default()
}

/// An IPv6 candidate at `start`: the run of hex digits, colons and dots
/// (at most 45 bytes, at least two colons and one hex digit, not followed
/// by a letter), less trailing punctuation, if the standard parser takes it.
fn ipv6_end(v: &[u8], start: usize) -> Option<usize> {
    let (mut end, mut colons, mut hex) = (start, 0usize, false);
    while let Some(&c) = v.get(end) {
        if c == b':' {
            colons += 1;
        } else if c.is_ascii_hexdigit() {
            hex = true;
        } else if c != b'.' {
            break;
        }
        end += 1;
        if end - start > ip::MAX_IPV6_LEN {
            return None;
        }
    }
    if colons < 2 || !hex || v.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    while end > start && v.get(end - 1) == Some(&b'.') {
        end -= 1;
    }
    if end >= start + 2 && v.get(end - 1) == Some(&b':') && v.get(end - 2) != Some(&b':') {
        end -= 1;
    }
    v.get(start..end).is_some_and(ip::is_ipv6).then_some(end)
}

fn is_ipv6_char(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

fn is_x(c: u8) -> bool {
    c == b'X' || c == b'x'
}

fn prev_is(v: &[u8], i: usize, f: impl Fn(u8) -> bool) -> bool {
    i.checked_sub(1)
        .and_then(|p| v.get(p))
        .is_some_and(|&c| f(c))
}

/// End of the alphanumeric run at `start`, and whether it has a digit.
fn alnum_run(v: &[u8], start: usize) -> (usize, bool) {
    let mut end = start;
    let mut has_digit = false;
    while let Some(&c) = v.get(end) {
        match CLASS[usize::from(c)] {
            DIGIT => has_digit = true,
            LETTER => {}
            _ => break,
        }
        end += 1;
    }
    (end, has_digit)
}

fn digit_run_end(v: &[u8], start: usize) -> usize {
    start
        + v.get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
}

/// The old card check (per-digit `% 10` Luhn).
mod bank_card {
    #![allow(dead_code)]
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
        (MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&d.len())
            && d.iter().all(u8::is_ascii_digit)
            && plausible_iin(d)
            && luhn_valid(d)
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

    /// The Luhn (mod 10) check over a string of ASCII digits; false for an
    /// empty string or any non-digit.
    pub fn luhn_valid(digits: &[u8]) -> bool {
        let mut sum = 0u32;
        for (i, &c) in digits.iter().rev().enumerate() {
            if !c.is_ascii_digit() {
                return false;
            }
            let mut d = u32::from(c - b'0');
            if i % 2 == 1 {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum = (sum + d) % 10; // no overflow on any length
        }
        !digits.is_empty() && sum == 0
    }
}

/// The old e-mail character classes and part checks.
pub(super) mod email {
    #![allow(dead_code)]

    /// Most characters in an address (RFC 5321 path limit less the brackets).
    pub const MAX_EMAIL_LEN: usize = 254;
    /// Most characters in a local part (RFC 5321 §4.5.3.1.1).
    pub const MAX_LOCAL_LEN: usize = 64;
    /// Most characters in a domain label (RFC 1035).
    pub const MAX_LABEL_LEN: usize = 63;

    /// Whether `s` is exactly an address in the accepted subset.
    pub fn is_valid_email(s: &str) -> bool {
        let b = s.as_bytes();
        let Some(at) = b.iter().position(|&c| c == b'@') else {
            return false;
        };
        b.len() <= MAX_EMAIL_LEN && valid_local(&b[..at]) && valid_domain(&b[at + 1..])
    }

    /// RFC 5322 `atext`.
    pub(crate) fn is_atext(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c)
    }

    pub(crate) fn valid_local(l: &[u8]) -> bool {
        !l.is_empty()
            && l.len() <= MAX_LOCAL_LEN
            && l.first() != Some(&b'.')
            && l.last() != Some(&b'.')
            && !l.windows(2).any(|w| w == b"..")
            && l.iter().all(|&c| c == b'.' || is_atext(c))
    }

    /// Characters a domain is made of (the scanner's right-hand run).
    pub(crate) fn is_domain_char(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
    }

    pub(crate) fn valid_domain(d: &[u8]) -> bool {
        if d.len() > MAX_EMAIL_LEN {
            return false;
        }
        let mut labels = 0usize;
        let mut last: &[u8] = &[];
        for label in d.split(|&c| c == b'.') {
            let ok = !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label.first() != Some(&b'-')
                && label.last() != Some(&b'-')
                && label
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-');
            if !ok {
                return false;
            }
            labels += 1;
            last = label;
        }
        labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
    }
}
