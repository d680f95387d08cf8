//! wormgate's retention rules and lock index.
//!
//! The rules (`rules::decide`) never perform I/O, never read the clock and know nothing of HTTP:
//! everything they need arrives as arguments, so every rule can be tested as a table. The index
//! (`index`) is the only part that touches a disk.

pub mod index;
pub mod lock;
pub mod permissions;
pub mod rules;
