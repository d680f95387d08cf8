//! S3's wire format: the lock headers and the small XML bodies the gateway reads and writes.
//! Everything that parses or renders S3 text lives here, and nothing here does I/O.

pub mod lock_headers;
pub mod lock_xml;
