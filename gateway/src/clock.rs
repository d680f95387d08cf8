//! The time every lock decision is made at.
//!
//! Decisions never read the system clock directly: they ask a `Clock`, so that the time source
//! can be made trustworthy (and, in tests, moved) in one place.

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The host's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
