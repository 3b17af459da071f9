//! Fuzzes request routing (`METHOD path` lines) against the shipped
//! api-example pack: path segments, percent-decoding, parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| danxia_fuzz::api_route(data));
