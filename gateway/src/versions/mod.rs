//! S3 versioning served by the gateway where the store has none or cannot overwrite: the
//! names versions take on the backend (`layout`) and the listings read back from them
//! (`listing`), and the records of lock changes (`journal`). The design, with its costs: `docs/VERSIONS.md`.

pub mod journal;
pub mod layout;
pub mod listing;
pub mod replies;
