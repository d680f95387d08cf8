//! wormgate: a streaming S3 proxy that refuses to destroy locked backups.
//!
//! The crate is laid out as the request path, one room per stage (see ARCHITECTURE.md):
//! [`server`] accepts, s3s verifies the signature, [`front`] admits and classifies,
//! [`enforce`] decides (with `policy`) and [`backend`] is the one door to the store. [`s3`]
//! holds the S3 wire format, [`ops`] the admin listener, audit, telemetry, rebuild and
//! verify, and [`config`] the settings.

pub mod backend;
pub mod config;
pub mod enforce;
pub mod error;
pub mod front;
pub mod ops;
pub mod s3;
pub mod server;
pub mod versions;
