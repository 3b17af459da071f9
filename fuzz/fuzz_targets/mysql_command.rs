//! Fuzzes MySQL command parsing: COM_CHANGE_USER, COM_STMT_* and the
//! binary parameters of COM_STMT_EXECUTE with input-chosen bound types
//! (checks in danxia_protocols::mysql::fuzz::check_commands).
#![no_main]

use danxia_protocols::mysql::fuzz::check_commands;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rng = danxia_fuzz::rng_for(data);
    check_commands(data, &mut rng, &mut danxia_fuzz::hits());
});
