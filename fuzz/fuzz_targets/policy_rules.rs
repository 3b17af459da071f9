//! Fuzzes database policy loading: rule files (the TOML policy language),
//! classification and allowlist files, split at `\n#---\n` lines (see
//! danxia_fuzz::policy_rules).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| danxia_fuzz::policy_rules(data));
