//! What a policy refusal looks like on the PostgreSQL wire (the decisions
//! themselves are `crate::enforce`'s).
//!
//! A refused message is not simply dropped. The proxy forwards a "poison"
//! in its place — a statement that cannot parse, `danxia_policy_denied`
//! — so that the server fails it exactly where the refused statement
//! stood, and then replaces the server's syntax error with its own 42501
//! on the way back. The server's own error handling thereby keeps client
//! and server in step in every case: an explicit transaction becomes
//! aborted (status `E`, and ROLLBACK / ROLLBACK TO SAVEPOINT behave as
//! after any error), the implicit transaction of a multi-statement Query or
//! an extended-protocol batch is rolled back, and the server discards the
//! rest of the batch up to Sync. Knows nothing of sockets.

use bytes::{BufMut, BytesMut};

use danxia_policies::Decision;
use danxia_protocols::pg::backend as be;
use danxia_protocols::pg::frontend as fe;

pub use crate::enforce::{AppName, Enforcer};

/// The poison's leading word: what the server's syntax error names, and
/// how the proxy recognises that error as its own.
pub const POISON_WORD: &str = "danxia_policy_denied";

/// The poison text: the refused rule's id in a comment so the server's log
/// line says why (ids are `[A-Za-z0-9._-]`, so it cannot close the comment).
fn poison_text(rule: &str) -> String {
    let safe: String = rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{POISON_WORD} /* refused by danxia rule {safe} */")
}

/// A Query message carrying the poison.
pub fn poison_query(out: &mut BytesMut, rule: &str) {
    fe::encode_query(out, &poison_text(rule));
}

/// A Parse message carrying the poison under the client's statement name
/// (raw bytes: the name is in the client encoding), so that name stays
/// undefined on the server just as if the server had refused the text.
pub fn poison_parse(out: &mut BytesMut, name: &[u8], rule: &str) {
    let text = poison_text(rule);
    let len = 4 + name.len() + 1 + text.len() + 1 + 2;
    out.reserve(1 + len);
    out.put_u8(fe::tag::PARSE);
    out.put_u32(len as u32);
    out.put_slice(name);
    out.put_u8(0);
    out.put_slice(text.as_bytes());
    out.put_u8(0);
    out.put_u16(0);
}

/// Whether an ErrorResponse body is the server's answer to a poison.
pub fn is_poison_error(body: &[u8]) -> bool {
    matches!(be::find_error_field(body, b'C'), Ok(Some(b"42601")))
        && be::find_error_field(body, b'M')
            .ok()
            .flatten()
            .is_some_and(|m| {
                m.windows(POISON_WORD.len())
                    .any(|w| w == POISON_WORD.as_bytes())
            })
}

/// The ErrorResponse the client gets for a refused statement.
pub fn deny_error(d: &Decision, sqlstate: &str, position: Option<(usize, usize)>) -> BytesMut {
    let mut out = BytesMut::new();
    let message = format!("danxia: {} (rule {})", d.message, d.rule_id);
    let detail = match position {
        Some((i, n)) if n > 1 => format!(
            "Statement {} of {n} in this request was refused by policy rule \"{}\"; none of them ran.",
            i + 1,
            d.rule_id
        ),
        _ => format!("Refused by policy rule \"{}\".", d.rule_id),
    };
    be::encode_error_response(&mut out, "ERROR", sqlstate, &message, Some(&detail));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_parse_is_a_well_formed_parse() {
        let mut out = BytesMut::new();
        poison_parse(&mut out, b"S_1", "deny-x");
        let body = &out[5..];
        let p = fe::decode_parse(body).expect("decodes");
        assert_eq!(p.name, "S_1");
        assert!(p.query.starts_with(POISON_WORD));
        assert!(p.query.contains("deny-x"));
        assert_eq!(
            u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize,
            out.len() - 1
        );
    }

    #[test]
    fn hostile_rule_ids_cannot_close_the_comment() {
        assert!(!poison_text("a*/; drop table t; --").contains("*/;"));
    }

    #[test]
    fn poison_errors_are_recognised_and_others_are_not() {
        let mut e = BytesMut::new();
        be::encode_error_response(
            &mut e,
            "ERROR",
            "42601",
            "syntax error at or near \"danxia_policy_denied\"",
            None,
        );
        assert!(is_poison_error(&e[5..]));
        let mut other = BytesMut::new();
        be::encode_error_response(
            &mut other,
            "ERROR",
            "42601",
            "syntax error at or near \"selec\"",
            None,
        );
        assert!(!is_poison_error(&other[5..]));
        let mut aborted = BytesMut::new();
        be::encode_error_response(
            &mut aborted,
            "ERROR",
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
            None,
        );
        assert!(!is_poison_error(&aborted[5..]));
    }
}
