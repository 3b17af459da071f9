//! Fuzzes MySQL handshake parsing: server greeting, handshake response
//! (and SSLRequest), auth switch, and the capability rewrites (checks in
//! danxia_protocols::mysql::fuzz::check_handshake).
#![no_main]

use danxia_protocols::mysql::fuzz::check_handshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_handshake(data, &mut danxia_fuzz::hits());
});
