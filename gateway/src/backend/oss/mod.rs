//! Alibaba OSS: the V4 signature of its own API, and its bucket-level retention (BucketWorm).
//!
//! OSS's S3-compatible endpoint carries the objects; BucketWorm has no S3 equivalent and is
//! called on OSS's own API, signed with [`sign`].

pub mod sign;
pub mod worm;
