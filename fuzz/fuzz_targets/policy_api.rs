//! Fuzzes API scope policy loading (and routing when it loads) and the
//! OpenAPI importer (see danxia_fuzz::policy_api).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| danxia_fuzz::policy_api(data));
