//! Fuzzes what the proxy runs on a MySQL client statement: facts, split,
//! lexer, fingerprint; the first byte picks NO_BACKSLASH_ESCAPES and
//! ANSI_QUOTES (see danxia_fuzz::sql).
#![no_main]

use danxia_detectors::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| danxia_fuzz::sql(data, Dialect::MySql));
