//! Fuzzes MySQL packet framing: one bounded frame (checks in
//! danxia_protocols::mysql::fuzz::check_framing), then the input as a
//! stream of frames the way the proxy reads a socket.
#![no_main]

use bytes::BytesMut;
use danxia_protocols::mysql::fuzz::check_framing;
use danxia_protocols::mysql::packet::{take_packet, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rng = danxia_fuzz::rng_for(data);
    check_framing(data, &mut rng, &mut danxia_fuzz::hits());
    let mut buf = BytesMut::from(data);
    while let Ok(Some(p)) = take_packet(&mut buf, 4 * MAX_FRAME) {
        assert!(p.payload.len() <= 4 * MAX_FRAME);
    }
});
