//! Order-preserving byte keys for versions and dates.
//!
//! A version key is `bucket 0x00 escaped(key) 0x00 0x01 version`: buckets never hold NUL, and a
//! NUL inside an object key is escaped as `0x00 0xFF`, so the key of every version of `k`, and of
//! every key starting with prefix `p`, begins with the bytes of `bucket 0x00 escaped(p)`.

use chrono::{DateTime, Utc};

use crate::lock::ObjectRef;

fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// The key of one version.
pub fn version(object: &ObjectRef) -> Vec<u8> {
    let mut out = prefix(&object.bucket, &object.key);
    out.extend_from_slice(&[0, 1]);
    if let Some(v) = &object.version_id {
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// The common start of the keys of every version in `bucket` whose key starts with `key_prefix`.
pub fn prefix(bucket: &str, key_prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key_prefix.len() + 16);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    push_escaped(&mut out, key_prefix);
    out
}

/// Milliseconds since the epoch as big-endian bytes that sort like the dates (sign bit flipped).
pub fn date(at: DateTime<Utc>) -> [u8; 8] {
    #[allow(clippy::cast_sign_loss)]
    let v = (at.timestamp_millis() as u64) ^ (1 << 63);
    v.to_be_bytes()
}

/// The key of a version in the by-date tree: the date, then the version key.
pub fn by_date(until: DateTime<Utc>, object: &ObjectRef) -> Vec<u8> {
    let mut out = date(until).to_vec();
    out.extend_from_slice(&version(object));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_their_parts_and_prefixes_nest() {
        let a = ObjectRef::new("b", "a", None);
        let a_nul = ObjectRef::new("b", "a\0z", None);
        let ab = ObjectRef::new("b", "ab", Some("v1"));
        assert!(version(&a) < version(&a_nul));
        assert!(version(&a_nul) < version(&ab));
        assert!(version(&ab).starts_with(&prefix("b", "a")));
        assert!(!version(&ObjectRef::new("bb", "a", None)).starts_with(&prefix("b", "")));
        let early: DateTime<Utc> = "1960-01-01T00:00:00Z".parse().expect("date");
        let late: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().expect("date");
        assert!(date(early) < date(late));
    }
}
