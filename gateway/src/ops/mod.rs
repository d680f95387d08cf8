//! Operating the gateway: the admin listener (health, readiness, metrics, the retention audit,
//! the decision log), and the offline index rebuild and verify.

pub mod admin;
pub mod audit;
pub mod rebuild;
pub mod verify;
