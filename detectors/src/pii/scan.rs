//! The value scanner: finds every sensitive value inside one column value
//! (bytes off the wire) and counts them by [`Kind`]. Owns candidate finding
//! and the rules that decide between kinds; the validators decide what a
//! candidate is. Never allocates, never panics, never reads anything but
//! the value: it runs on every row of a result set, on bytes an attacker
//! may have chosen.
//!
//! # How a value is read
//!
//! One forward pass over the bytes. Nothing can start anywhere but at an
//! ASCII letter, digit or colon, so the pass jumps from one to the next,
//! testing eight bytes at a time (Chinese text, spaces and punctuation cost
//! a few instructions a word), and reads each run it lands on:
//!
//! * **ASCII alphanumeric runs** are the candidates ("tokens"). A sensitive
//!   value must be a *whole* run: `13812345678` inside `913812345678` or
//!   `ab1381234567890` is not a phone. Everything that is not ASCII
//!   alphanumeric ends a run, so `电话13812345678，` and `tel:13812345678`
//!   both work; invalid UTF-8 is just more non-alphanumeric bytes.
//! * **Digit runs joined by one space or dash** are read as groups and
//!   matched, longest pattern first, against the written forms: a card in
//!   fours (`6222 0212 3456 7890 123`), a phone after a country code
//!   (`+86 138 1234 5678`, `0086-13812345678`), a phone in 3-4-4, an ID
//!   number in 6-8-4 (`110105 19491231 002X`), else each run alone. A
//!   pattern that validates consumes its runs; the rest are tried again.
//! * **Digit runs joined by dots** are one unit: four parts of 1–3 digits
//!   are an IPv4 candidate; anything else (a price `1234.50`, a date
//!   `2024.01.01`, a version `1.2.3.4.5`) is skipped whole, so the digits
//!   of a decimal number are never a phone or card.
//! * **Hex digits and colons** after a run or at `::` are an IPv6
//!   candidate, parsed by the standard library (at most 45 bytes, at least
//!   one hex digit: a bare `::`, as in a heading, is not reported).
//! * **Letter+digit runs** are matched whole against the credit code,
//!   passport and travel-permit patterns. Otherwise, if the run is letters,
//!   one digit run, letters (a label stuck to a number: `tel13812345678`,
//!   `ID11010519491231002X`), the digit run is tried alone; codes that
//!   interleave letters and digits, and runs of 16 or more hex digits
//!   (hashes, keys), are opaque.
//! * **`@`** anchors e-mail addresses, found first (with `memchr` on long
//!   values, a word at a time on short ones: either costs next to nothing
//!   when there is no `@`): the local part is
//!   the atext run to its left, the domain the run to its right (a
//!   trailing `.` is sentence punctuation). The address's bytes are taken
//!   out of the pass, so `13812345678@qq.com` is one e-mail, not a phone.
//! * **A run starting with an upper-case ASCII letter** right after a UTF-8
//!   lead byte `E4`–`E9` and two more bytes is tried as a plate: those
//!   three bytes as its province character. The capital rejects almost
//!   every CJK character before any comparison, which is why no
//!   Aho-Corasick automaton is used: the 31 province characters would cost
//!   an automaton step per byte of every value, where this costs nothing
//!   per CJK character and a 31-way 3-byte compare only in front of an
//!   ASCII capital. The same goes for `@` (one byte needs no automaton).
//!
//! # Deciding between kinds
//!
//! Each byte belongs to at most one finding. An all-digit run of 18 is an
//! ID number if it validates as one; if it has an ID number's layout
//! (address code and birth date) but a wrong check digit it is *nothing*
//! (a mistyped ID, not a card that happens to look like one); otherwise a
//! UnionPay card (`62…`), a credit code, another card, in that order. 15
//! digits: a legacy ID, else `0086` + phone. 11 digits: a phone; 13: `86` +
//! phone; 16, 17, 19: a card. A card in groups of four is likewise not a
//! card if its 18 digits have an ID number's layout.
//!
//! # Counts are per value
//!
//! [`Scanner::scan`] adds what it found in one value to a [`Counts`]: a
//! value holding two phone numbers adds 2 to [`Kind::Phone`]. It never
//! resets: clear it (or use a fresh one) per value for per-value counts,
//! or keep adding for a column sample. Disabled kinds are still recognised,
//! so that their characters are not read as another kind, but not counted:
//! disabling a kind never changes the counts of the others.
//!
//! Not found: full-width digits (`１３８…`), numbers spelled with Chinese
//! numerals, values split across columns, and anything encoded (base64,
//! hex, hashes): these are column-name questions ([`super::names`]).

use memchr::memchr;

use super::{bank_card, credit_code, email, id_number, ip, passport, phone, plate, Kind};

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

/// Lead bytes of the 3-byte UTF-8 sequences in U+4000–U+9FFF, where all
/// the plate province characters are.
const CJK_LEAD_MIN: u8 = 0xE4;
const CJK_LEAD_MAX: u8 = 0xE9;
/// Bytes of a province character in UTF-8.
const PROVINCE_LEN: usize = 3;

/// From this length on, [`find_at_sign`] hands the search to `memchr`.
const MEMCHR_MIN_LEN: usize = 64;

/// Bytes [`next_candidate`] and [`find_at_sign`] test at once.
const WORD: usize = 8;
const ONES: u64 = u64::from_le_bytes([0x01; WORD]);
const HIGH_BITS: u64 = u64::from_le_bytes([0x80; WORD]);

const CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'0'..=b'9' => DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' => LETTER,
            b':' => COLON,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// How many values of each [`Kind`] were found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([u32; Kind::COUNT]);

impl Counts {
    /// All zero.
    pub fn new() -> Counts {
        Counts::default()
    }

    /// How many of `kind` were found.
    pub fn get(&self, kind: Kind) -> u32 {
        self.0[kind.index()]
    }

    /// Adds `n` to `kind` (saturating).
    pub fn add(&mut self, kind: Kind, n: u32) {
        let c = &mut self.0[kind.index()];
        *c = c.saturating_add(n);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for (kind, n) in other.iter() {
            self.add(kind, n);
        }
    }

    /// Sum over all kinds (saturating).
    pub fn total(&self) -> u32 {
        self.0.iter().fold(0u32, |a, &n| a.saturating_add(n))
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    /// Back to all zero.
    pub fn clear(&mut self) {
        self.0 = [0; Kind::COUNT];
    }

    /// The kinds found, with their counts, in [`Kind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Kind, u32)> {
        Kind::ALL.into_iter().zip(self.0).filter(|&(_, n)| n > 0)
    }
}

/// Finds sensitive values inside column values. Build once (per policy
/// load) and share: scanning takes `&self`.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Bit `kind.index()` set for each kind counted.
    enabled: u16,
    /// Latest birth year of an ID number (the current year at build time;
    /// a scanner kept across New Year misses the new year's births until
    /// it is rebuilt).
    max_birth_year: u16,
}

impl Scanner {
    /// A scanner that counts `kinds`; [`Kind::Name`] and [`Kind::Address`]
    /// have no content form and are ignored. Reads the clock once, for the
    /// ID numbers' birth-year limit.
    pub fn new(kinds: &[Kind]) -> Scanner {
        let enabled = kinds
            .iter()
            .filter(|k| k.is_detectable())
            .fold(0u16, |m, k| m | 1 << k.index());
        Scanner {
            enabled,
            max_birth_year: id_number::current_year(),
        }
    }

    /// A scanner that counts every detectable kind.
    pub fn all() -> Scanner {
        Scanner::new(&Kind::DETECTABLE)
    }

    /// The same scanner with a fixed latest birth year (deterministic tests).
    pub fn with_max_birth_year(mut self, year: u16) -> Scanner {
        self.max_birth_year = year;
        self
    }

    /// Whether `kind` is counted.
    pub fn is_enabled(&self, kind: Kind) -> bool {
        self.enabled & (1 << kind.index()) != 0
    }

    /// Finds every sensitive value in `value` and adds one per finding to
    /// `counts` (see the module docs: counts are per call, never reset).
    pub fn scan(&self, value: &[u8], counts: &mut Counts) {
        if self.enabled == 0 {
            return;
        }
        // E-mail addresses first (they hold digits and letters the pass
        // must not read), then the pass over the bytes between them.
        let mut cursor = 0;
        let mut at_from = 0;
        while let Some((start, end)) = next_email(value, cursor, &mut at_from) {
            self.pass(value.get(..start).unwrap_or_default(), cursor, counts);
            self.count(Kind::Email, counts);
            cursor = end;
        }
        self.pass(value, cursor, counts);
    }

    /// Scans `segment` from `floor` on.
    fn pass(&self, segment: &[u8], floor: usize, counts: &mut Counts) {
        Pass {
            v: segment,
            floor,
            scanner: self,
            counts,
        }
        .run();
    }

    fn count(&self, kind: Kind, counts: &mut Counts) {
        if self.is_enabled(kind) {
            counts.add(kind, 1);
        }
    }
}

/// The next valid e-mail address starting at or after `floor`, as a byte
/// span. `from` remembers where the search for `@` stopped, so every `@`
/// of a value is looked at once.
fn next_email(v: &[u8], floor: usize, from: &mut usize) -> Option<(usize, usize)> {
    let mut pos = (*from).max(floor);
    while let Some(off) = v.get(pos..).and_then(find_at_sign) {
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

/// The offset of the first `@` in `v`. `memchr` is the fastest search on
/// long values, but its set-up (a dispatch through a function pointer and
/// two calls) costs more than the whole search on the short values most
/// columns hold, which are tested a word at a time instead.
fn find_at_sign(v: &[u8]) -> Option<usize> {
    if v.len() >= MEMCHR_MIN_LEN {
        return memchr(b'@', v);
    }
    let mut i = 0;
    while let Some(word) = word_at(v, i) {
        let hits = at_sign_bytes(word);
        if hits != 0 {
            return Some(i + first_marked(hits));
        }
        i += WORD;
    }
    v.get(i..)?.iter().position(|&c| c == b'@').map(|o| i + o)
}

/// The classic zero-byte test on `w` XOR `@@@@@@@@`: the lowest flagged
/// byte is exactly the first `@` (higher flags may be spurious, after a
/// borrow).
fn at_sign_bytes(w: u64) -> u64 {
    let x = w ^ (ONES * u64::from(b'@'));
    x.wrapping_sub(ONES) & !x & HIGH_BITS
}

/// The address around the `@` at `at`, if it is a valid one. Both scans
/// are bounded by the RFC 5321 lengths, so a value of many `@` costs
/// linear time.
fn email_at(v: &[u8], floor: usize, at: usize) -> Option<(usize, usize)> {
    let start = email::local_start(v, floor, at)?;
    let limit = at.saturating_add(1 + email::MAX_EMAIL_LEN).min(v.len());
    let domain_len = v
        .get(at + 1..limit)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| email::is_domain_char(c))
        .count();
    let mut end = at + 1 + domain_len;
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
    /// Where the pass starts: nothing before it is read as part of a
    /// finding (the bytes before are an e-mail address).
    floor: usize,
    scanner: &'a Scanner,
    counts: &'a mut Counts,
}

impl Pass<'_> {
    fn run(&mut self) {
        let v = self.v;
        let mut i = self.floor;
        loop {
            i = next_candidate(v, i);
            let Some(&b) = v.get(i) else {
                return;
            };
            i = if b == b':' {
                self.colon(i)
            } else {
                self.token(i)
            };
        }
    }

    /// A colon outside any run: the start of an IPv6 address at `::`.
    fn colon(&mut self, i: usize) -> usize {
        let v = self.v;
        if v.get(i + 1) == Some(&b':') && !prev_is(v, i, is_ipv6_char) {
            if let Some(end) = ipv6_end(v, i) {
                self.hit(Kind::Ip);
                return end;
            }
        }
        i + 1
    }

    fn hit(&mut self, kind: Kind) {
        self.scanner.count(kind, self.counts);
    }

    /// An alphanumeric run starting at `start` (a run boundary). Returns
    /// where scanning goes on, always past `start`.
    fn token(&mut self, start: usize) -> usize {
        let v = self.v;
        if let Some(end) = self.plate_before(start) {
            return end;
        }
        let (end, has_digit, has_letter) = alnum_run(v, start);
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
        if !has_letter {
            let next_is_digit = v.get(end + 1).is_some_and(u8::is_ascii_digit);
            return match v.get(end) {
                Some(b'.') if next_is_digit => self.dotted(start),
                Some(b' ' | b'-') if next_is_digit => self.groups(start),
                // The commonest case by far: a number standing alone. It
                // is one group (a run not followed by a letter or digit is
                // not followed by an `X` either), so `groups` would only
                // end up at `number`.
                _ => {
                    if may_be_number(tok.len()) {
                        if let Some(kind) = self.number(tok) {
                            self.hit(kind);
                        }
                    }
                    end
                }
            };
        }
        let lead = digit_run_end(tok, 0);
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

    /// A plate whose province character ends at `start`, the start of an
    /// alphanumeric run: its length from `start`, if the run is a capital
    /// letter (the cheap filter), the three bytes before it a province
    /// character and the whole validates. Looking back from the letter
    /// instead of stopping at every CJK character lets [`next_candidate`]
    /// skip Chinese text eight bytes at a time; the two are the same
    /// because the bytes of a province character are never part of
    /// another finding.
    fn plate_before(&mut self, start: usize) -> Option<usize> {
        let v = self.v;
        if !v.get(start).is_some_and(u8::is_ascii_uppercase) {
            return None;
        }
        let lead = start
            .checked_sub(PROVINCE_LEN)
            .filter(|&l| l >= self.floor)?;
        if !v
            .get(lead)
            .is_some_and(|c| (CJK_LEAD_MIN..=CJK_LEAD_MAX).contains(c))
        {
            return None;
        }
        let len = v.get(lead..).and_then(plate::plate_len)?;
        self.scanner.count(Kind::Plate, self.counts);
        Some(lead + len)
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

/// Whether a digit run this long (an ID's `X` included) may be anything
/// [`Pass::number`] finds: the inline test that lets the short numbers of
/// free text (house numbers, counts, years) skip the call.
fn may_be_number(len: usize) -> bool {
    matches!(len, 11 | 13 | 15..=19)
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

/// End of the alphanumeric run at `start`, whether it has a digit and
/// whether it has a letter. A byte at a time: most runs are a few bytes
/// long, where a word-at-a-time test is slower (its result is needed
/// before the next load, where this loop's branches are predicted).
fn alnum_run(v: &[u8], start: usize) -> (usize, bool, bool) {
    let mut end = start;
    let (mut has_digit, mut has_letter) = (false, false);
    while let Some(&c) = v.get(end) {
        match CLASS[usize::from(c)] {
            DIGIT => has_digit = true,
            LETTER => has_letter = true,
            _ => break,
        }
        end += 1;
    }
    (end, has_digit, has_letter)
}

/// Where the next byte [`Pass::run`] acts on is, at or after `i`: an ASCII
/// letter, digit or colon (every finding starts at one, or, for a plate,
/// three bytes before one), else `v.len()`. Values are mostly Chinese
/// text, spaces and punctuation between short runs, so this tests eight
/// bytes at a time instead of branching on each.
fn next_candidate(v: &[u8], mut i: usize) -> usize {
    // In ASCII text the next run is usually one or two bytes on (a space,
    // `, `): two byte tests find it sooner than a word's, whose result the
    // next load has to wait for.
    for _ in 0..2 {
        match v.get(i) {
            Some(&c) if CLASS[usize::from(c)] != OTHER => return i,
            Some(_) => i += 1,
            None => return v.len(),
        }
    }
    while let Some(word) = word_at(v, i) {
        let hits = candidate_bytes(word);
        if hits != 0 {
            return i + first_marked(hits);
        }
        i += WORD;
    }
    // The last few bytes one at a time: a word-sized load of them (the
    // value's last word, less the bytes already tested) measured no faster.
    while let Some(&c) = v.get(i) {
        if CLASS[usize::from(c)] != OTHER {
            return i;
        }
        i += 1;
    }
    v.len()
}

/// The little-endian word of `v` at `i`, if `v` has 8 bytes there.
fn word_at(v: &[u8], i: usize) -> Option<u64> {
    let bytes = v.get(i..i.checked_add(WORD)?)?;
    <[u8; WORD]>::try_from(bytes).ok().map(u64::from_le_bytes)
}

/// Index of the lowest byte whose high bit is set in `marks` (non-zero).
fn first_marked(marks: u64) -> usize {
    (marks.trailing_zeros() / 8) as usize
}

/// The high bit of each byte of `w` (little-endian) that is an ASCII
/// letter, digit or colon, all other bits clear. SWAR range tests on the
/// low seven bits, where no byte's sum carries into the next; bytes with
/// the high bit set (UTF-8 sequences) are then masked out.
fn candidate_bytes(w: u64) -> u64 {
    let x = w & !HIGH_BITS;
    // `0`–`9` and `:` are 0x30–0x3A; letters, with 0x20 set, 0x61–0x7A
    // (setting 0x20 folds `A`–`Z` onto `a`–`z`, and nothing else).
    let digits = in_range(x, b'0', b':');
    let letters = in_range(x | (ONES * 0x20), b'a', b'z');
    (digits | letters) & !w
}

/// The high bit of each byte of `x` (every byte below 0x80) within
/// `lo..=hi`: adding `0x80 - lo` sets it exactly when the byte is at
/// least `lo`, adding `0x7F - hi` exactly when it is above `hi`.
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = x + ONES * u64::from(0x80 - lo);
    let above_hi = x + ONES * u64::from(0x7F - hi);
    at_least_lo & !above_hi & HIGH_BITS
}

fn digit_run_end(v: &[u8], start: usize) -> usize {
    start
        + v.get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng, TEST_YEAR};
    use crate::pii::plate;

    fn scanner() -> Scanner {
        Scanner::all().with_max_birth_year(TEST_YEAR)
    }

    fn found(value: &str) -> Vec<(Kind, u32)> {
        let mut c = Counts::new();
        scanner().scan(value.as_bytes(), &mut c);
        c.iter().collect()
    }

    #[test]
    fn table() {
        use Kind::*;
        let cases: &[(&str, &[(Kind, u32)])] = &[
            // bare values
            ("13812345678", &[(Phone, 1)]),
            ("11010519491231002X", &[(IdNumber, 1)]),
            ("11010519491231002x", &[(IdNumber, 1)]),
            ("110105491231002", &[(IdNumber, 1)]),
            ("6200000000000005", &[(BankCard, 1)]),
            ("91350100M000100Y43", &[(CreditCode, 1)]),
            ("zhang.san@example.com", &[(Email, 1)]),
            ("E12345678", &[(Passport, 1)]),
            ("C12345678", &[(TravelPermit, 1)]),
            ("192.168.1.10", &[(Ip, 1)]),
            ("2001:db8::1", &[(Ip, 1)]),
            ("京A·12345", &[(Plate, 1)]),
            // written forms
            ("联系电话: 138-1234-5678", &[(Phone, 1)]),
            ("电话：138 1234 5678。", &[(Phone, 1)]),
            ("+86 138 1234 5678", &[(Phone, 1)]),
            ("+8613812345678", &[(Phone, 1)]),
            ("0086-13812345678", &[(Phone, 1)]),
            ("8613812345678", &[(Phone, 1)]),
            ("卡号 6200 0000 0000 0005 请核对", &[(BankCard, 1)]),
            ("6200-0000-0000-0005", &[(BankCard, 1)]),
            ("身份证 110105 19491231 002X", &[(IdNumber, 1)]),
            (
                "身份证号11010519491231002X电话13812345678",
                &[(IdNumber, 1), (Phone, 1)],
            ),
            ("tel13812345678", &[(Phone, 1)]),
            ("ID11010519491231002X", &[(IdNumber, 1)]),
            ("[2001:db8::1]:443", &[(Ip, 1)]),
            ("::1", &[(Ip, 1)]),
            ("::ffff:192.168.1.1", &[(Ip, 1)]),
            ("from 10.0.0.1:5432.", &[(Ip, 1)]),
            ("车牌粤B1AB23违章", &[(Plate, 1)]),
            ("粤Z1234港", &[(Plate, 1)]),
            ("沪AD12345 沪A12345F", &[(Plate, 2)]),
            ("邮箱：zhang@163.com.", &[(Email, 1)]),
            (
                "护照E12345678, 通行证CA1234567",
                &[(Passport, 1), (TravelPermit, 1)],
            ),
            // one finding per byte
            ("13812345678@qq.com", &[(Email, 1)]),
            ("13812345678 13912345678", &[(Phone, 2)]),
            ("13812345678-13912345678", &[(Phone, 2)]),
            ("138 1234 5678 2024", &[(Phone, 1)]),
            // not sensitive
            ("913812345678", &[]),       // 12 digits
            ("20240101123045", &[]),     // timestamp
            ("13812345678.00", &[]),     // an amount
            ("0.13812345678", &[]),      // a fraction
            ("1.2.3.4.5", &[]),          // a version
            ("01.2.3.4", &[]),           // octal-looking
            ("110105194912310021", &[]), // ID with a wrong check digit
            ("12:30:45", &[]),           // a time
            ("00:1a:2b:3c:4d:5e", &[]),  // a MAC address
            ("std::vector", &[]),
            ("标题::", &[]),
            ("abc13812345678def13812345678a0b1c2", &[]), // a long hex run: opaque
            ("G14552641527HR3HMT", &[]),                 // an interleaved code
            ("13812345678abc", &[(Phone, 1)]),
            ("Mobile13812345678", &[(Phone, 1)]),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                &[],
            ),
            ("550e8400-e29b-41d4-a716-446655440000", &[]),
            ("zhang..san@example.com", &[]),
            ("zhang@localhost", &[]),
            ("京A1234", &[]),
            ("北京欢迎你", &[]),
            ("", &[]),
        ];
        for &(value, want) in cases {
            assert_eq!(found(value), want, "{value:?}");
        }
    }

    #[test]
    fn disabled_kinds_keep_their_bytes() {
        let phones_only = Scanner::new(&[Kind::Phone]).with_max_birth_year(TEST_YEAR);
        let mut c = Counts::new();
        // A valid ID from Gansu (62) would pass as a card if the ID
        // detector did not claim it.
        for v in ["620102199001010257", "13812345678@qq.com", "13812345678"] {
            phones_only.scan(v.as_bytes(), &mut c);
        }
        assert_eq!(c.iter().collect::<Vec<_>>(), [(Kind::Phone, 1)]);
        let none = Scanner::new(&[Kind::Name]);
        assert!(!none.is_enabled(Kind::Name));
        none.scan(b"13812345678", &mut c);
        assert_eq!(c.total(), 1);
    }

    #[test]
    fn counts_accumulate_and_clear() {
        let s = scanner();
        let mut c = Counts::new();
        s.scan(b"13812345678", &mut c);
        s.scan(b"13912345678, 13712345678", &mut c);
        assert_eq!(c.get(Kind::Phone), 3);
        let mut d = Counts::new();
        d.merge(&c);
        d.add(Kind::Phone, u32::MAX);
        assert_eq!(d.get(Kind::Phone), u32::MAX);
        assert_eq!(d.total(), u32::MAX);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn invalid_utf8_is_opaque_but_ascii_is_scanned() {
        let mut v = vec![0xff, 0xe4, 0xb8];
        v.extend_from_slice(b"13812345678");
        v.extend_from_slice(&[0xc0, 0xe4, b'A']);
        v.extend_from_slice("京".as_bytes());
        v.extend_from_slice(b"A12345");
        v.push(0xe4);
        let mut c = Counts::new();
        scanner().scan(&v, &mut c);
        assert_eq!(c.get(Kind::Phone), 1);
        assert_eq!(c.get(Kind::Plate), 1);
    }

    /// Fragments that open every candidate kind, at random.
    const FRAGMENTS: &[&str] = &[
        "1",
        "13812345678",
        "0",
        "9",
        "X",
        "x",
        "E",
        "C",
        "A",
        " ",
        "-",
        ".",
        ":",
        "::",
        "@",
        "@@",
        "+86",
        "0086",
        "京",
        "粤",
        "·",
        "学",
        "a",
        "f",
        "Z",
        "11010519491231002",
        "6200",
        "0000",
        "0005",
        "zhang",
        ".com",
        "91350100M000100Y4",
        "2001",
        "db8",
        "\u{ff11}",
        "é",
        "\n",
    ];

    #[test]
    fn no_panic_and_bounded_counts_on_random_input() {
        let s = scanner();
        let mut rng = Rng(0x5ca1_ab1e);
        for _ in 0..20_000 {
            let mut v: Vec<u8> = Vec::new();
            for _ in 0..rng.below(24) {
                if rng.below(6) == 0 {
                    v.push(rng.below(256) as u8);
                } else {
                    v.extend_from_slice(rng.pick(FRAGMENTS).as_bytes());
                }
            }
            let mut c = Counts::new();
            s.scan(&v, &mut c);
            // Every finding is at least 3 bytes and no byte is counted twice.
            assert!(
                c.total() as usize * 3 <= v.len(),
                "{:?}",
                String::from_utf8_lossy(&v)
            );
        }
    }

    /// One piece of a differential-test value: a valid value, a near
    /// miss or noise (alone or in text), a fragment, or raw bytes.
    fn piece(rng: &mut Rng, out: &mut Vec<u8>) {
        let s = match rng.below(9) {
            0 => match rng.below(9) {
                0 => gen::id_number(rng),
                1 => gen::phone(rng),
                2 => gen::bank_card(rng),
                3 => gen::credit_code(rng),
                4 => gen::email(rng),
                5 => gen::passport(rng),
                6 => gen::travel_permit(rng),
                7 => gen::ip(rng),
                _ => gen::plate(rng),
            },
            1 => match rng.below(9) {
                0 => gen::id_number_near_miss(rng).1,
                1 => gen::phone_near_miss(rng).1,
                2 => gen::bank_card_near_miss(rng).1,
                3 => gen::credit_code_near_miss(rng).1,
                4 => gen::email_near_miss(rng).1,
                5 => gen::passport_near_miss(rng).1,
                6 => gen::travel_permit_near_miss(rng).1,
                7 => gen::ip_near_miss(rng).1,
                _ => gen::plate_near_miss(rng).1,
            },
            2 => gen::noise(rng).1,
            3 => {
                let v = match rng.below(3) {
                    0 => gen::phone(rng),
                    1 => gen::plate(rng),
                    _ => gen::noise(rng).1,
                };
                gen::embed(rng, &v)
            }
            4 => {
                let n = rng.range(1, 20) as usize;
                rng.digits(n)
            }
            5 => format!(
                "{}{}",
                rng.pick(&plate::PLATE_PROVINCES),
                char::from(rng.range(u64::from(b'A'), u64::from(b'Z')) as u8)
            ),
            6 => {
                for _ in 0..rng.below(4) {
                    out.push(rng.below(256) as u8);
                }
                return;
            }
            _ => rng.pick(FRAGMENTS).to_owned(),
        };
        out.extend_from_slice(s.as_bytes());
    }

    /// What may come between two pieces: nothing (so that pieces merge
    /// into longer runs), or a separator the scanner treats specially.
    const JOINS: &[&str] = &[
        "", "", "", " ", "-", ".", ":", "@", "X", "a", "，", "京", "号", "·", "\t",
    ];

    /// The fast paths change how the scanner walks a value, never what it
    /// finds: over random values built from every kind's valid values,
    /// near misses and look-alikes, it counts exactly what the old
    /// scanner (kept in `reference`) counts, with every kind enabled and
    /// with some disabled.
    #[test]
    fn same_findings_as_the_reference_scanner() {
        let scanners = [
            scanner(),
            Scanner::new(&[Kind::Phone, Kind::Plate]).with_max_birth_year(TEST_YEAR),
            Scanner::new(&[Kind::BankCard, Kind::Email, Kind::Ip]).with_max_birth_year(TEST_YEAR),
        ];
        let mut rng = Rng(0xd1ff);
        let mut v = Vec::new();
        for _ in 0..200_000 {
            v.clear();
            for _ in 0..rng.range(1, 8) {
                piece(&mut rng, &mut v);
                v.extend_from_slice(rng.pick(JOINS).as_bytes());
            }
            for s in &scanners {
                let (mut fast, mut slow) = (Counts::new(), Counts::new());
                s.scan(&v, &mut fast);
                reference::scan(s, &v, &mut slow);
                assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&v));
            }
        }
    }

    /// The table-driven e-mail checks accept what the old ones did, on
    /// strings of the characters that matter to them.
    #[test]
    fn email_checks_match_the_reference() {
        use crate::pii::email;
        let mut rng = Rng(0xe3a1);
        for _ in 0..200_000 {
            let longest = if rng.chance(90) { 12 } else { 300 };
            let n = rng.below(longest) as usize;
            let s: Vec<u8> = (0..n)
                .map(|_| match rng.below(8) {
                    0 => b'.',
                    1 => b'-',
                    2 => rng.pick(b"!#$%&'*+/=?^_`{|}~@ \\"),
                    3 => rng.below(256) as u8,
                    4 => rng.pick(b"0123456789"),
                    _ => rng.pick(b"abcxyzABZ"),
                })
                .collect();
            assert_eq!(
                email::valid_local(&s),
                reference::email::valid_local(&s),
                "{s:?}"
            );
            assert_eq!(
                email::valid_domain(&s),
                reference::email::valid_domain(&s),
                "{s:?}"
            );
        }
        // The merged backward walk against the old walk, then check.
        for _ in 0..200_000 {
            let n = rng.range(1, 80) as usize;
            let v: Vec<u8> = (0..n)
                .map(|_| match rng.below(6) {
                    0 => b'.',
                    1 => rng.pick(b"!#~@ \xe4"),
                    _ => rng.pick(b"az09"),
                })
                .collect();
            let at = rng.below(n as u64) as usize;
            let floor = rng.below(at as u64 + 1) as usize;
            let mut start = at;
            while start > floor && at - start <= email::MAX_LOCAL_LEN {
                match v.get(start - 1) {
                    Some(&c) if c == b'.' || reference::email::is_atext(c) => start -= 1,
                    _ => break,
                }
            }
            let old = reference::email::valid_local(&v[start..at]).then_some(start);
            assert_eq!(email::local_start(&v, floor, at), old, "{v:?} {floor} {at}");
        }
        for c in 0..=255u8 {
            assert_eq!(email::is_atext(c), reference::email::is_atext(c), "{c}");
            let domain = reference::email::is_domain_char(c);
            assert_eq!(email::is_domain_char(c), domain, "{c}");
        }
    }

    #[test]
    fn find_at_sign_finds_the_first() {
        let mut rng = Rng(0xa7);
        for _ in 0..50_000 {
            let n = rng.below(2 * MEMCHR_MIN_LEN as u64) as usize;
            let v: Vec<u8> = (0..n)
                .map(|_| match rng.below(10) {
                    0 => b'@',
                    1 => b'@' ^ 0x80,
                    2 => b'@' + 1,
                    3 => b'@' - 1,
                    _ => rng.below(256) as u8,
                })
                .collect();
            let want = v.iter().position(|&c| c == b'@');
            assert_eq!(find_at_sign(&v), want, "{v:?}");
        }
    }

    #[test]
    fn next_candidate_finds_the_first() {
        let mut rng = Rng(0xca);
        for _ in 0..50_000 {
            let n = rng.below(40) as usize;
            let v: Vec<u8> = (0..n)
                .map(|_| match rng.below(6) {
                    0 => rng.pick(b"09azAZ:"),
                    1 => rng.pick(b"/;@[`{"),
                    _ => rng.pick("京号，".as_bytes()),
                })
                .collect();
            let start = rng.below(n as u64 + 1) as usize;
            let want = v
                .iter()
                .skip(start)
                .position(|&c| c.is_ascii_alphanumeric() || c == b':')
                .map_or(n, |o| start + o);
            assert_eq!(next_candidate(&v, start), want, "{v:?} {start}");
        }
    }

    #[test]
    fn alnum_run_reads_whole_runs() {
        let mut rng = Rng(0xa1);
        for _ in 0..50_000 {
            let n = rng.below(40) as usize;
            let v: Vec<u8> = (0..n)
                .map(|_| match rng.below(4) {
                    0 => rng.pick(b"0189"),
                    1 => rng.pick(b"aAzZ"),
                    2 => rng.pick(b"/:@[`{\xff\x80\xb0\xba\xc1"),
                    _ => rng.below(256) as u8,
                })
                .collect();
            let start = rng.below(n as u64 + 1) as usize;
            let run = v.get(start..).unwrap_or_default();
            let len = run.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
            let run = &run[..len];
            let want = (
                start + len,
                run.iter().any(u8::is_ascii_digit),
                run.iter().any(u8::is_ascii_alphabetic),
            );
            assert_eq!(alnum_run(&v, start), want, "{v:?} {start}");
        }
    }

    #[test]
    fn only_runs_of_number_lengths_are_numbers() {
        let s = scanner();
        for len in 0..=40 {
            if !may_be_number(len) {
                for c in b'0'..=b'9' {
                    let d = vec![c; len];
                    let p = Pass {
                        v: &d,
                        floor: 0,
                        scanner: &s,
                        counts: &mut Counts::new(),
                    };
                    assert_eq!(p.number(&d), None, "{len}");
                }
            }
        }
    }

    #[test]
    fn candidate_bytes_are_letters_digits_and_colons() {
        let mut rng = Rng(0xc0de);
        for b in 0..=255u8 {
            for pos in 0..WORD {
                let mut word: [u8; WORD] = std::array::from_fn(|_| rng.below(256) as u8);
                word[pos] = b;
                let hits = candidate_bytes(u64::from_le_bytes(word));
                let hit = hits >> (pos * 8 + 7) & 1 == 1;
                assert_eq!(hit, CLASS[usize::from(b)] != OTHER, "{b:#x} at {pos}");
                assert_eq!(hits & !HIGH_BITS, 0);
            }
        }
    }

    #[test]
    fn pathological_inputs_are_linear() {
        let s = scanner();
        let big = 1 << 20;
        for unit in [
            &b"@"[..],
            b"a@",
            b"a.",
            b"1 ",
            b"1-",
            b"1.",
            b"1:",
            b"::",
            b"a:",
            "京A".as_bytes(),
            b"9",
            b"X",
        ] {
            let v = unit.repeat(big / unit.len());
            let t = std::time::Instant::now();
            let mut c = Counts::new();
            s.scan(&v, &mut c);
            // Debug build: generous, but a quadratic scan would take minutes.
            assert!(
                t.elapsed().as_secs() < 5,
                "{:?}",
                String::from_utf8_lossy(unit)
            );
        }
    }
}
