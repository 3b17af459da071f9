//! Fuzzes startup-phase framing and decoding (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage), checking that an accepted protocol-3.0
//! StartupMessage re-encodes to the same bytes. Must never: do anything but
//! call the codec.
#![no_main]

use danxia_protocols::pg::frame::{check_startup, MAX_STARTUP_PACKET};
use danxia_protocols::pg::startup::{decode_startup, encode_startup, StartupPacket, PROTOCOL_3_0};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_startup(data);
    if let Ok(Some(total)) = check_startup(data, MAX_STARTUP_PACKET) {
        let packet = &data[..total];
        if let Ok(StartupPacket::Startup { protocol, params }) = decode_startup(packet) {
            if protocol == PROTOCOL_3_0 {
                assert_eq!(encode_startup(&params), packet);
            }
        }
    }
});
