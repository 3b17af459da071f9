//! SCRAM channel binding across danxia's TLS termination. `-PLUS`
//! mechanisms bind the authentication to the certificate the client saw,
//! which is danxia's, not the server's: they can never succeed through a
//! TLS-terminating proxy, so the server's offer of them is removed. A
//! client that then says "I could bind but you did not offer it" (GS2 flag
//! `y`) is refused by a TLS-connected server as a downgrade; the flag is
//! covered by the client's proof, so it cannot be rewritten, and the
//! session says clearly what to do instead (docs/tls.md). This module only
//! rewrites and inspects the messages; the session decides.

use bytes::BytesMut;
use danxia_protocols::pg::backend::{self as be, Authentication};

/// The suffix of channel-binding SCRAM mechanisms.
const PLUS: &str = "-PLUS";

/// What a client is told when channel binding cannot work.
pub const CHANNEL_BINDING_REFUSED: &str = "SCRAM channel binding cannot pass through danxia's TLS termination; connect with channel_binding=disable (the connection to danxia is still encrypted, and danxia verifies the database server)";

/// An AuthenticationSASL message (`R`, code 10) without the `-PLUS`
/// mechanisms, or `None` when there is nothing to remove (or removing would
/// leave no mechanism).
pub fn strip_channel_binding(body: &[u8]) -> Option<BytesMut> {
    let Ok(Authentication::Sasl { mechanisms }) = be::decode_authentication(body) else {
        return None;
    };
    let kept: Vec<&str> = mechanisms
        .iter()
        .copied()
        .filter(|m| !m.ends_with(PLUS))
        .collect();
    if kept.len() == mechanisms.len() || kept.is_empty() {
        return None;
    }
    let len = 4 + 4 + kept.iter().map(|m| m.len() + 1).sum::<usize>() + 1;
    let mut out = BytesMut::with_capacity(len + 1);
    out.extend_from_slice(&[be::tag::AUTHENTICATION]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&10u32.to_be_bytes());
    for m in kept {
        out.extend_from_slice(m.as_bytes());
        out.extend_from_slice(&[0]);
    }
    out.extend_from_slice(&[0]);
    Some(out)
}

/// The GS2 channel-binding flag of a SASLInitialResponse body (mechanism
/// name, int32 length, client-first-message): `b'n'` (client does not
/// support binding), `b'y'` (supports it, server did not offer it) or
/// `b'p'` (binds). `None` when the body is not a SCRAM initial response.
pub fn gs2_flag(body: &[u8]) -> Option<u8> {
    let nul = body.iter().position(|&b| b == 0)?;
    let mechanism = std::str::from_utf8(&body[..nul]).ok()?;
    if !mechanism.starts_with("SCRAM-") {
        return None;
    }
    let rest = body.get(nul + 1..)?;
    let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    if len <= 0 {
        return None;
    }
    rest.get(4).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(mechs: &[&str]) -> Vec<u8> {
        let mut b = 10u32.to_be_bytes().to_vec();
        for m in mechs {
            b.extend_from_slice(m.as_bytes());
            b.push(0);
        }
        b.push(0);
        b
    }

    #[test]
    fn plus_mechanisms_are_removed() {
        let body = sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let out = strip_channel_binding(&body).expect("rewritten");
        let mut want = vec![b'R'];
        let inner = sasl(&["SCRAM-SHA-256"]);
        want.extend_from_slice(&((inner.len() + 4) as u32).to_be_bytes());
        want.extend_from_slice(&inner);
        assert_eq!(&out[..], &want[..]);
        // The rewritten body decodes to the remaining mechanism.
        match be::decode_authentication(&out[5..]).unwrap() {
            Authentication::Sasl { mechanisms } => assert_eq!(mechanisms, ["SCRAM-SHA-256"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_to_strip_is_left_alone() {
        assert!(strip_channel_binding(&sasl(&["SCRAM-SHA-256"])).is_none());
        assert!(strip_channel_binding(&sasl(&["SCRAM-SHA-256-PLUS"])).is_none());
        // md5 request, not SASL.
        assert!(strip_channel_binding(&[0, 0, 0, 5, 1, 2, 3, 4]).is_none());
        assert!(strip_channel_binding(&[0, 0]).is_none());
    }

    #[test]
    fn gs2_flags_are_read() {
        let initial = |mech: &str, data: &[u8]| {
            let mut b = mech.as_bytes().to_vec();
            b.push(0);
            b.extend_from_slice(&(data.len() as i32).to_be_bytes());
            b.extend_from_slice(data);
            b
        };
        assert_eq!(
            gs2_flag(&initial("SCRAM-SHA-256", b"y,,n=,r=abc")),
            Some(b'y')
        );
        assert_eq!(
            gs2_flag(&initial("SCRAM-SHA-256", b"n,,n=,r=abc")),
            Some(b'n')
        );
        assert_eq!(
            gs2_flag(&initial(
                "SCRAM-SHA-256-PLUS",
                b"p=tls-server-end-point,,n=,r=a"
            )),
            Some(b'p')
        );
        assert_eq!(gs2_flag(&initial("OTHER", b"y")), None);
        assert_eq!(gs2_flag(b"SCRAM-SHA-256\0\xff\xff\xff\xff"), None);
        assert_eq!(gs2_flag(b"SCRAM-SHA-256\0\0\0"), None);
        assert_eq!(gs2_flag(b"no terminator"), None);
    }
}
