//! `wormgate index rebuild`: recreates the lock index from the backend.
//!
//! Every lock travels with its object (native lock headers, or the `x-amz-meta-wormgate-*`
//! metadata of gateway-profile writes), so the index can be read back from the store: list
//! every bucket, every key (every version on a native backend), HEAD each one and record what
//! protects it, merged with what the index already holds: the strictest record wins, so a
//! rebuild never weakens a readable index. Pending records stay (a write whose outcome was
//! never seen stays too strict).
//! Versions the gateway serves are read back from their names (`versions::layout`): key, id
//! and kind; a delete marker has no lock to read.
//! A gateway-profile bucket's lock configuration (default retention included) is read from the
//! records the backend keeps of it (`.wormgate/bucket/lock!…`), and its versioning from
//! `.wormgate/bucket/versioning!…`; buckets found holding locks, or versions without such a
//! versioning record, are marked lock-enabled. A bucket configured before those records existed keeps its
//! default retention only in the index, and must be set again after the index is lost.

use http::{HeaderMap, StatusCode};
use policy::index::{LockRecord, LockSource};
use policy::lock::{ObjectRef, Profile};

use crate::backend::ReadMethod;
use crate::enforce::Gateway;
use crate::error::GatewayError;
use crate::s3::lock_xml;
use crate::s3::target::{Target, encode_query_value};
use crate::versions::layout;

/// What a rebuild found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub buckets: usize,
    pub versions: usize,
    pub locked: usize,
    /// Versions whose lock could not be read (left out of the index; logged).
    pub unreadable: usize,
}

/// Undoes XML escaping in element text.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&rest[..=end]),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The texts of every `<tag>` directly inside each `<block>` of `xml`.
fn blocks<'a>(xml: &'a str, block: &str) -> Vec<&'a str> {
    let open = format!("<{block}>");
    let close = format!("</{block}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let inner = &rest[start + open.len()..];
        let Some(end) = inner.find(&close) else {
            break;
        };
        out.push(&inner[..end]);
        rest = &inner[end + close.len()..];
    }
    out
}

fn element(xml: &str, tag: &str) -> Option<String> {
    blocks(xml, tag).first().map(|s| unescape(s))
}

impl Gateway {
    async fn list_page(&self, bucket: Option<&str>, query: &str) -> Result<String, GatewayError> {
        let target = Target {
            bucket: bucket.map(str::to_owned),
            key: None,
        };
        let resp = self
            .read(
                ReadMethod::Get,
                &target,
                (!query.is_empty()).then_some(query),
                HeaderMap::new(),
            )
            .await?;
        let status = resp.status();
        let body = lock_xml::read_capped(s3s::Body::from(resp.into_body()), 64 * 1024 * 1024)
            .await
            .map_err(|e| GatewayError::BackendUnavailable(format!("listing: {e}")))?;
        if status != StatusCode::OK {
            return Err(GatewayError::BackendUnavailable(format!(
                "listing {} answered {status}",
                bucket.unwrap_or("buckets")
            )));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// The names of the backend's buckets.
    pub(crate) async fn bucket_names(&self) -> Result<Vec<String>, GatewayError> {
        let listing = self.list_page(None, "").await?;
        Ok(blocks(&listing, "Bucket")
            .into_iter()
            .filter_map(|b| element(b, "Name"))
            .collect())
    }

    /// Every (key, version id) of a bucket: all versions on a native backend, else the keys.
    pub(crate) async fn versions_of(
        &self,
        bucket: &str,
        profile: Profile,
    ) -> Result<Vec<(String, Option<String>)>, GatewayError> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        let mut token: Option<String> = None;
        loop {
            let page = if profile == Profile::Native {
                let q = match &marker {
                    Some((k, v)) => format!(
                        "versions=&key-marker={}&version-id-marker={}",
                        encode_query_value(k),
                        encode_query_value(v)
                    ),
                    None => "versions=".to_owned(),
                };
                let xml = self.list_page(Some(bucket), &q).await?;
                for v in blocks(&xml, "Version") {
                    let key = element(v, "Key").unwrap_or_default();
                    let id = element(v, "VersionId").filter(|v| v != "null");
                    out.push((key, id));
                }
                marker = match (
                    element(&xml, "NextKeyMarker"),
                    element(&xml, "NextVersionIdMarker"),
                ) {
                    (Some(k), Some(v)) => Some((k, v)),
                    _ => None,
                };
                xml
            } else {
                let q = match &token {
                    Some(t) => format!("list-type=2&continuation-token={}", encode_query_value(t)),
                    None => "list-type=2".to_owned(),
                };
                let xml = self.list_page(Some(bucket), &q).await?;
                for c in blocks(&xml, "Contents") {
                    let name = element(c, "Key").unwrap_or_default();
                    // A version the gateway wrote names its key and id; a delete marker has
                    // no lock; anything else in the gateway's folder is not a client's.
                    match layout::parse_version_name(&name) {
                        Some((_, id)) if id.kind() == layout::Kind::DeleteMarker => {}
                        Some((key, id)) => out.push((key, Some(id.as_str().to_owned()))),
                        None if layout::is_reserved(&name) => {}
                        None => out.push((name, None)),
                    }
                }
                token = element(&xml, "NextContinuationToken");
                xml
            };
            if element(&page, "IsTruncated").as_deref() != Some("true") {
                return Ok(out);
            }
        }
    }

    /// Recreates the committed part of the index from the backend.
    ///
    /// # Errors
    /// The backend cannot be listed, or the index cannot be written.
    pub async fn rebuild_index(&self) -> Result<RebuildReport, GatewayError> {
        let mut report = RebuildReport::default();
        let buckets = self.bucket_names().await?;
        // The latest version of each key is read from the store's listing again as reads ask.
        self.locks.index.clear_latest()?;
        // The strictest record wins: what the readable index holds is merged with what the
        // backend shows, never replaced by it.
        for bucket in buckets {
            report.buckets += 1;
            let profile = self.locks.profile_of(&bucket);
            // The bucket's lock configuration, default retention included, and whether a
            // client enabled versioning on it, as the backend records them (read into the
            // index when the index has none).
            let versioned_alone = profile != Profile::Native && {
                let facts = self.bucket_facts(&bucket).await?;
                !facts.lock.enabled && facts.versioning == policy::lock::Versioning::Enabled
            };
            let mut bucket_locked = 0;
            let versions = self.versions_of(&bucket, profile).await?;
            for (key, version_id) in &versions {
                let (key, version_id) = (key.clone(), version_id.clone());
                report.versions += 1;
                let object = ObjectRef::new(&bucket, &key, version_id.as_deref());
                let inspected = self.head_lock(&object).await?;
                match inspected {
                    Some(lock) if !lock.is_empty() => {
                        let read = LockRecord::new(
                            object.clone(),
                            lock,
                            LockSource::Backend,
                            self.locks.now(),
                        );
                        let merged = match self.locks.index.get(&object)? {
                            Some(known) => known.strictest(read),
                            None => read,
                        };
                        self.locks.index.put(&merged)?;
                        report.locked += 1;
                        bucket_locked += 1;
                    }
                    Some(_) => {}
                    None => {
                        tracing::warn!(%bucket, %key, "lock state unreadable; not indexed");
                        report.unreadable += 1;
                    }
                }
            }
            if profile != Profile::Native {
                // Every object was read: the index now vouches for the bucket. Versions the
                // gateway wrote say it was a lock bucket, unless a record says a client
                // enabled versioning on it.
                let versioned = !versioned_alone && versions.iter().any(|(_, id)| id.is_some());
                self.locks.update_bucket(&bucket, |r| {
                    r.lock.enabled |= bucket_locked > 0 || versioned;
                })?;
            }
        }
        self.locks.index.flush()?;
        Ok(report)
    }

    /// The lock the backend records for one version (its headers and its journal); `None`
    /// when unreadable.
    pub(crate) async fn head_lock(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<policy::lock::ObjectLock>, GatewayError> {
        let read = self.backend_lock(object).await?;
        if !read.status.is_success() {
            return Ok(None);
        }
        Ok(read.lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_elements_are_unescaped() {
        let xml = "<ListBucketResult><Contents><Key>a&amp;b&#x20;c</Key></Contents><Contents><Key>d</Key></Contents><IsTruncated>false</IsTruncated></ListBucketResult>";
        let keys: Vec<String> = blocks(xml, "Contents")
            .into_iter()
            .filter_map(|c| element(c, "Key"))
            .collect();
        assert_eq!(keys, ["a&b c", "d"]);
        assert_eq!(element(xml, "IsTruncated").as_deref(), Some("false"));
    }
}
