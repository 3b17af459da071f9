//! The MySQL / MariaDB listener kind: sessions, the result codecs and the
//! connection character set. The wire codec is `danxia_protocols::mysql`;
//! policy, audit, metrics and result inspection are the shared engine's.

pub mod charset;
pub mod results;
pub mod session;
