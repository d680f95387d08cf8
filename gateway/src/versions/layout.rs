//! Where versions live on the backend: every version and delete marker is a new backend object
//! whose name nothing else reuses, so a store that forbids overwrites (OSS BucketWorm) holds
//! versions as well as one that does not.
//!
//! ```text
//! K                                   the version `null` of key K (objects from before)
//! .wormgate/v/<enc(K)>!<version id>   every later version and delete marker of K
//! ```
//!
//! The backend's lexical order of these names is S3's order: by key (UTF-8 bytes), then newest
//! version first. Two things make it so:
//! - `enc` keeps every character above `"` (U+0022) as it is and writes the others (control
//!   characters, space, `!`, `"`) as `"` and two hex digits. It preserves order, and the
//!   separator `!` sorts below the first character of every encoded character, so the versions
//!   of `a` come before those of `a b` and `a!`.
//! - a version id begins with `u64::MAX −` its creation time in nanoseconds (16 hex digits),
//!   then 16 random hex digits (two gateways, or two runs of one, writing at the same
//!   nanosecond: a collision would be an overwrite, so 64 bits), then its kind
//!   (`o` object, `m` delete marker): newest first, unique, and readable from the name alone.
//!
//! A name is its own record: `index rebuild` recreates every version and marker, and their
//! order, from a listing. `/` is kept as it is, so a backend rolls up `/` delimiters itself.
//! Keys under [`RESERVED`] are the gateway's: clients can neither write, read nor list them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Backend names the gateway keeps for itself.
pub use crate::s3::target::RESERVED_FOLDER as RESERVED;
pub use crate::s3::target::is_reserved;
/// Where versions and delete markers live.
const VERSIONS: &str = ".wormgate/v/";
/// After every name under [`RESERVED`]: no gateway name begins with U+10FFFF, and clients may
/// not write there.
pub const RESERVED_END: &str = ".wormgate/\u{10FFFF}";
/// Between a key and its version id; below every character an encoded key can continue with.
const SEP: char = '!';
/// Begins an escaped character.
const ESC: char = '"';
/// Above every character of a version id: `<enc(K)>!~` comes after every version of K and
/// before every longer key.
const AFTER_VERSIONS: &str = "!~";
/// Hex digits of time, hex digits of randomness, one kind.
const ID_LEN: usize = 16 + 16 + 1;

fn escaped(c: char) -> bool {
    c <= ESC
}

/// Appends `key` written so that the backend's byte order is the keys' order.
fn encode_into(key: &str, out: &mut String) {
    for c in key.chars() {
        if escaped(c) {
            out.push(ESC);
            out.push_str(&format!("{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// `key` as it stands in version names.
#[must_use]
pub fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    encode_into(key, &mut out);
    out
}

/// The key an encoded name stands for; `None` if it is not one `encode` writes.
#[must_use]
pub fn decode(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            let hi = chars.next()?.to_digit(16)?;
            let lo = chars.next()?.to_digit(16)?;
            let code = char::from_u32(hi * 16 + lo)?;
            if !escaped(code) {
                return None;
            }
            out.push(code);
        } else if escaped(c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// What a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    DeleteMarker,
}

/// A version id the gateway made: opaque to clients, newest first in byte order, never `null`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionId(String);

static LAST_NANOS: AtomicU64 = AtomicU64::new(0);

impl VersionId {
    /// A new id of `kind` made at `now` (the gateway's trusted time, which never goes back,
    /// even across restarts), later than every id this process made before.
    ///
    /// # Panics
    /// When the system has no source of randomness.
    #[must_use]
    pub fn new(now: chrono::DateTime<chrono::Utc>, kind: Kind) -> Self {
        Self::new_after(now, None, kind)
    }

    /// As [`VersionId::new`], and later than `after` too, whatever the clock says (a record
    /// made on a reading of `after` sorts after it).
    ///
    /// # Panics
    /// When the system has no source of randomness.
    #[must_use]
    pub fn new_after(
        now: chrono::DateTime<chrono::Utc>,
        after: Option<&VersionId>,
        kind: Kind,
    ) -> Self {
        let now = now
            .timestamp_nanos_opt()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
            .max(after.map_or(0, |a| a.nanos().saturating_add(1)));
        let mut last = LAST_NANOS.load(Ordering::Relaxed);
        let nanos = loop {
            let next = now.max(last + 1);
            match LAST_NANOS.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("a source of randomness");
        Self::from_parts(nanos, u64::from_be_bytes(random), kind)
    }

    /// The id made at `nanos` with `random`; what `new` builds, for tests and rebuilds.
    #[must_use]
    pub fn from_parts(nanos: u64, random: u64, kind: Kind) -> Self {
        let kind = match kind {
            Kind::Object => 'o',
            Kind::DeleteMarker => 'm',
        };
        Self(format!("{:016x}{random:016x}{kind}", u64::MAX - nanos))
    }

    /// A client's version id, if it is one the gateway made.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let (digits, kind) = s.split_at_checked(ID_LEN - 1)?;
        let hex = digits.len() == ID_LEN - 1
            && digits
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (hex && matches!(kind, "o" | "m")).then(|| Self(s.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[must_use]
    pub fn kind(&self) -> Kind {
        if self.0.ends_with('m') {
            Kind::DeleteMarker
        } else {
            Kind::Object
        }
    }

    /// When it was made, in nanoseconds since the epoch.
    #[must_use]
    pub fn nanos(&self) -> u64 {
        u64::MAX - u64::from_str_radix(&self.0[..16], 16).unwrap_or(0)
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a bucket's object lock configuration is recorded, one new record a change (newest
/// first): `.wormgate/bucket/lock!<id>`, its body the configuration's XML.
const BUCKET_LOCK: &str = ".wormgate/bucket/lock!";

/// The name of a new record of the bucket's lock configuration.
#[must_use]
pub fn bucket_lock_record(id: &VersionId) -> String {
    format!("{BUCKET_LOCK}{id}")
}

/// The prefix under which the records of the bucket's lock configuration are listed, newest
/// first.
#[must_use]
pub fn bucket_lock_records() -> &'static str {
    BUCKET_LOCK
}

/// Where a bucket without object lock records that a client enabled versioning on it, one
/// empty record an enabling: `.wormgate/bucket/versioning!<id>`. Versioning, once enabled,
/// stays: there is no record that turns it off.
const BUCKET_VERSIONING: &str = ".wormgate/bucket/versioning!";

/// The name of a new record that the bucket is versioned.
#[must_use]
pub fn bucket_versioning_record(id: &VersionId) -> String {
    format!("{BUCKET_VERSIONING}{id}")
}

/// The prefix under which the records that the bucket is versioned are listed.
#[must_use]
pub fn bucket_versioning_records() -> &'static str {
    BUCKET_VERSIONING
}

/// The backend name of version `id` of `key`.
#[must_use]
pub fn version_name(key: &str, id: &VersionId) -> String {
    let mut out = String::with_capacity(VERSIONS.len() + key.len() + 1 + ID_LEN);
    out.push_str(VERSIONS);
    encode_into(key, &mut out);
    out.push(SEP);
    out.push_str(id.as_str());
    out
}

/// The backend prefix of every version of every key that begins with `prefix`.
#[must_use]
pub fn versions_prefix(prefix: &str) -> String {
    let mut out = String::from(VERSIONS);
    encode_into(prefix, &mut out);
    out
}

/// The backend prefix of the versions of `key` alone, newest first.
#[must_use]
pub fn versions_of(key: &str) -> String {
    let mut out = versions_prefix(key);
    out.push(SEP);
    out
}

/// A backend name after every version of `key` and before those of any greater key.
#[must_use]
pub fn after_versions_of(key: &str) -> String {
    let mut out = versions_prefix(key);
    out.push_str(AFTER_VERSIONS);
    out
}

/// The key and version a version name stands for; `None` for any other name.
#[must_use]
pub fn parse_version_name(name: &str) -> Option<(String, VersionId)> {
    let rest = name.strip_prefix(VERSIONS)?;
    let (encoded, id) = rest.rsplit_once(SEP)?;
    Some((decode(encoded)?, VersionId::parse(id)?))
}

/// The client prefix a backend common prefix of the versions folder stands for.
#[must_use]
pub fn parse_versions_prefix(name: &str) -> Option<String> {
    decode(name.strip_prefix(VERSIONS)?)
}

/// Whether the backend can roll up `delimiter` in the versions folder itself: it stands as it
/// is in encoded keys and can be found neither inside an escape nor in a version id.
#[must_use]
pub fn backend_can_roll_up(delimiter: &str) -> bool {
    !delimiter.is_empty()
        && delimiter
            .chars()
            .all(|c| !escaped(c) && !c.is_ascii_hexdigit() && !matches!(c, 'o' | 'm' | '~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_key_then_newest_first() {
        let older = VersionId::from_parts(1_000, 7, Kind::Object);
        let newer = VersionId::from_parts(2_000, 1, Kind::DeleteMarker);
        let mut names = [
            version_name("a b", &older),
            version_name("a", &older),
            version_name("a!", &older),
            version_name("a", &newer),
            version_name("a/b", &older),
            version_name("ab", &older),
            version_name("a\u{1}", &older),
            version_name("a\"", &older),
            version_name("a#", &older),
        ];
        names.sort();
        let order: Vec<(String, VersionId)> = names
            .iter()
            .map(|n| parse_version_name(n).expect("a version name"))
            .collect();
        let keys: Vec<&str> = order.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["a", "a", "a\u{1}", "a b", "a!", "a\"", "a#", "a/b", "ab"]
        );
        assert_eq!(order[0].1, newer);
        assert_eq!(newer.kind(), Kind::DeleteMarker);
        assert_eq!(older.nanos(), 1_000);
    }

    #[test]
    fn ids_from_one_process_are_newest_first() {
        let now = chrono::Utc::now();
        let a = VersionId::new(now, Kind::Object);
        let b = VersionId::new(now, Kind::Object);
        assert!(b < a, "{b} {a}");
        assert_eq!(VersionId::parse(a.as_str()), Some(a.clone()));
        for bad in ["null", "", "x", "../../etc", &a.as_str().replace('o', "x")] {
            assert_eq!(VersionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_names_the_gateway_writes_parse() {
        assert_eq!(
            decode("\"41"),
            None,
            "an escape of a character that is not escaped"
        );
        assert_eq!(decode("a b"), None, "a raw space");
        assert_eq!(decode("\"2"), None);
        assert_eq!(
            parse_version_name("a!000000000000000000000000000000000o"),
            None
        );
        assert!(is_reserved(".wormgate/x") && is_reserved(".wormgate"));
        assert!(VERSIONS.starts_with(RESERVED) && RESERVED_END.starts_with(RESERVED));
        assert!(BUCKET_LOCK.starts_with(RESERVED) && !BUCKET_LOCK.starts_with(VERSIONS));
        assert!(!is_reserved(".wormgates") && !is_reserved("a/.wormgate/x"));
        assert!(is_reserved(".WormGate/v/x") && is_reserved(".WORMGATE"));
        assert!(backend_can_roll_up("/") && backend_can_roll_up("|"));
        assert!(!backend_can_roll_up(" ") && !backend_can_roll_up("a") && !backend_can_roll_up(""));
    }
}
