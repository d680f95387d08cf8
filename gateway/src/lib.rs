//! wormgate: a streaming S3 proxy that refuses to destroy locked backups.
//!
//! The request path: [`server`] accepts, s3s verifies the signature, [`proxy`] classifies
//! ([`op`]), authorises and forwards through [`backend`], streaming both ways.

pub mod admin;
pub mod admission;
pub mod audit;
pub mod backend;
mod bucket_retention;
mod buckets;
pub mod clock;
pub mod config;
pub mod credentials;
mod deletes;
pub mod embedded;
pub mod enforce;
pub mod error;
mod group_flush;
mod key_locks;
pub mod lock_headers;
pub mod lock_xml;
pub mod op;
pub mod oss;
pub mod proxy;
pub mod rebuild;
mod retention;
pub mod server;
mod sigv4;
pub mod target;
pub mod telemetry;
pub mod tls;
pub mod trailer;
pub mod verify;
mod writes;
