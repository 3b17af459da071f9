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
