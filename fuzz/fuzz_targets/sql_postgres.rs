//! Fuzzes what the proxy runs on a PostgreSQL client statement: facts
//! (sqlparser and our AST walkers), split, lexer, fingerprint; the first
//! byte picks standard_conforming_strings (see danxia_fuzz::sql).
#![no_main]

use danxia_detectors::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| danxia_fuzz::sql(data, Dialect::Postgres));
