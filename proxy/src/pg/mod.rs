//! The PostgreSQL listener's session logic: startup and authentication
//! relay, the steady-state relay, statement tracking, policy enforcement
//! and cancel-key mapping. Wire decoding itself lives in `danxia-protocols`.

pub mod cancel;
pub mod encoding;
pub mod enforce;
pub mod results;
pub mod scram;
pub mod session;
pub mod tracker;
