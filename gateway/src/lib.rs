//! wormgate: a streaming S3 proxy that refuses to destroy locked backups.
//!
//! The request path: [`server`] accepts, s3s verifies the signature, [`proxy`] classifies
//! ([`op`]), authorises and forwards through [`backend`], streaming both ways.

pub mod backend;
pub mod config;
pub mod credentials;
pub mod embedded;
pub mod error;
pub mod op;
pub mod proxy;
pub mod server;
pub mod target;
pub mod trailer;
