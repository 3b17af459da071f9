//! Fuzzes MySQL result decoding: OK/ERR/EOF, column definitions, text
//! and binary rows and their masking rewriters (checks in
//! danxia_protocols::mysql::fuzz: decoders agree, rewrites decode back).
#![no_main]

use danxia_protocols::mysql::fuzz::{check_binary_row, check_responses, check_text_row};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rng = danxia_fuzz::rng_for(data);
    let mut hits = danxia_fuzz::hits();
    check_responses(data, &mut hits);
    check_text_row(data, &mut hits);
    check_binary_row(data, &mut rng, &mut hits);
});
