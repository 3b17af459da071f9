//! E-mail addresses. Owns the format check only.
//!
//! Accepted: a pragmatic subset of RFC 5322 `addr-spec` (with the length
//! limits of RFC 5321 §4.5.3.1), the form real mailboxes have:
//!
//! * local part: 1–64 characters of RFC 5322 `atext` (letters, digits and
//!   ``!#$%&'*+/=?^_`{|}~-``) and dots, not starting or ending with a dot,
//!   no two dots in a row (`dot-atom`); no quoted strings, no comments;
//! * one `@`;
//! * domain: at least two labels separated by dots, each 1–63 characters of
//!   `[A-Za-z0-9-]` not starting or ending with `-`; the last (top-level)
//!   label alphabetic and at least 2 characters; no address literals
//!   (`[1.2.3.4]`);
//! * at most 254 characters in all.
//!
//! Internationalised addresses (UTF-8 local parts, RFC 6531; Unicode
//! domains and `xn--` top-level domains) are not accepted: they are rare in
//! government systems and would widen the scanner's byte classes.

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

/// Byte classes of an address, one bit each: the scanner tests every byte
/// around every `@` against them, so they are a table, not a chain of
/// comparisons.
const ATEXT: u8 = 1;
/// A domain label's characters: letters, digits and `-`.
const LABEL: u8 = 2;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_alphanumeric() {
            t[i] = ATEXT | LABEL;
        }
        i += 1;
    }
    let specials = b"!#$%&'*+/=?^_`{|}~-";
    let mut j = 0;
    while j < specials.len() {
        t[specials[j] as usize] |= ATEXT;
        j += 1;
    }
    t[b'-' as usize] |= LABEL;
    t
};

/// RFC 5322 `atext`: letters, digits and ``!#$%&'*+/=?^_`{|}~-``.
pub(crate) fn is_atext(c: u8) -> bool {
    CLASS[usize::from(c)] & ATEXT != 0
}

/// A `dot-atom` of at most [`MAX_LOCAL_LEN`] characters: atext and dots,
/// no dot first, last or next to another.
pub(crate) fn valid_local(l: &[u8]) -> bool {
    if l.is_empty() || l.len() > MAX_LOCAL_LEN || l.last() == Some(&b'.') {
        return false;
    }
    // A dot is fine only after atext: `prev_dot` starts true to refuse a
    // leading dot.
    let mut prev_dot = true;
    for &c in l {
        if c == b'.' {
            if prev_dot {
                return false;
            }
            prev_dot = true;
        } else if is_atext(c) {
            prev_dot = false;
        } else {
            return false;
        }
    }
    true
}

/// Where the local part before the `@` at `at` starts, if the run of atext
/// and dots to its left (not before `floor`, at most one byte longer than
/// a local part) is a valid one: the scanner's left-hand run and
/// [`valid_local`] in one backward walk, which stops at the first fault.
pub(crate) fn local_start(v: &[u8], floor: usize, at: usize) -> Option<usize> {
    let lowest = floor.max(at.saturating_sub(MAX_LOCAL_LEN + 1));
    let mut start = at;
    // Whether the byte at `start` is a dot (none yet: `start` is the `@`).
    let mut dot = false;
    while start > lowest {
        let c = *v.get(start - 1)?;
        if c == b'.' {
            if dot || start == at {
                return None; // two dots in a row, or a dot last
            }
            dot = true;
        } else if is_atext(c) {
            dot = false;
        } else {
            break;
        }
        start -= 1;
    }
    let len = at - start;
    (len > 0 && len <= MAX_LOCAL_LEN && !dot).then_some(start)
}

/// Characters a domain is made of (the scanner's right-hand run).
pub(crate) fn is_domain_char(c: u8) -> bool {
    c == b'.' || CLASS[usize::from(c)] & LABEL != 0
}

/// At least two dot-separated labels of 1–[`MAX_LABEL_LEN`] letters,
/// digits and inner dashes; the last alphabetic, at least 2 letters. One
/// pass, no splitting.
pub(crate) fn valid_domain(d: &[u8]) -> bool {
    if d.len() > MAX_EMAIL_LEN {
        return false;
    }
    // The label being read: its length, last byte and whether it is all
    // letters so far.
    let (mut labels, mut len, mut prev, mut alpha) = (0usize, 0usize, b'.', true);
    for &c in d {
        if c == b'.' {
            if len == 0 || prev == b'-' {
                return false;
            }
            labels += 1;
            (len, alpha) = (0, true);
        } else {
            let first_dash = len == 0 && c == b'-';
            if CLASS[usize::from(c)] & LABEL == 0 || first_dash || len == MAX_LABEL_LEN {
                return false;
            }
            len += 1;
            alpha &= c.is_ascii_alphabetic();
        }
        prev = c;
    }
    let last_ok = len >= 2 && prev != b'-' && alpha;
    last_ok && labels >= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_all = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        let cases: &[(&str, bool)] = &[
            ("zhang.san@example.com", true),
            ("zhangsan@163.com", true),
            ("13812345678@qq.com", true),
            ("user+tag@mail.gov.cn", true),
            ("o'brien@example.co.uk", true),
            ("a@b.cn", true),
            ("zhang..san@example.com", false),
            (".zhang@example.com", false),
            ("zhang.@example.com", false),
            ("zhang@localhost", false),
            ("zhang@example.c0m", false),
            ("zhang@example.c", false),
            ("zhang@-example.com", false),
            ("zhang@example-.com", false),
            ("zhang@example..com", false),
            ("zhang@@example.com", false),
            ("zhang@[1.2.3.4]", false),
            ("\"zhang\"@example.com", false),
            ("zhang san@example.com", false),
            ("张三@example.com", false),
            ("zhang.example.com", false),
            ("@example.com", false),
            (&long_local, false),
            (&long_all, false),
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(is_valid_email(s), ok, "{s}");
        }
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0xe_3a11);
        for _ in 0..2_000 {
            let v = gen::email(&mut rng);
            assert!(is_valid_email(&v), "{v}");
            let (why, bad) = gen::email_near_miss(&mut rng);
            assert!(!is_valid_email(&bad), "{why}: {bad}");
        }
    }
}
