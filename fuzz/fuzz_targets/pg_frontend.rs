//! Fuzzes PostgreSQL framing and every frontend-message decoder.
//!
//! The input is read as a stream of tagged messages, the way the proxy reads
//! a client; each message body goes to the decoder for its tag, and the raw
//! input also goes to every decoder, so layouts are explored even when the
//! framing bytes are wrong. Must never: do anything but call the codec.
#![no_main]

use danxia_protocols::pg::frame::split_message;
use danxia_protocols::pg::frontend::{self, tag};
use libfuzzer_sys::fuzz_target;

/// Small enough that oversized frames are exercised often.
const MAX_MESSAGE: usize = 64 * 1024;

fn decode_all(body: &[u8]) {
    let _ = frontend::decode_query(body);
    let _ = frontend::decode_parse(body);
    let full = frontend::decode_bind(body);
    let names = frontend::decode_bind_names(body);
    assert_eq!(full.is_ok(), names.is_ok(), "Bind decoders disagree");
    let _ = frontend::decode_execute(body);
    let _ = frontend::decode_close(body);
    let _ = frontend::decode_describe(body);
    let _ = frontend::decode_function_call(body);
    let _ = frontend::decode_copy_fail(body);
}

fuzz_target!(|data: &[u8]| {
    decode_all(data);
    let mut rest = data;
    while let Ok(Some(msg)) = split_message(rest, MAX_MESSAGE) {
        match msg.tag {
            tag::QUERY => drop(frontend::decode_query(msg.body)),
            tag::PARSE => drop(frontend::decode_parse(msg.body)),
            tag::BIND => drop(frontend::decode_bind(msg.body)),
            tag::EXECUTE => drop(frontend::decode_execute(msg.body)),
            tag::CLOSE => drop(frontend::decode_close(msg.body)),
            tag::DESCRIBE => drop(frontend::decode_describe(msg.body)),
            tag::FUNCTION_CALL => drop(frontend::decode_function_call(msg.body)),
            tag::COPY_FAIL => drop(frontend::decode_copy_fail(msg.body)),
            _ => {}
        }
        rest = &rest[msg.total_len()..];
    }
});
