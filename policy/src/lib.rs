//! wormgate's retention rules.
//!
//! This crate decides; it never performs I/O, never reads the clock and knows nothing of HTTP.
//! Everything it needs arrives as arguments, so every rule can be tested as a table.
