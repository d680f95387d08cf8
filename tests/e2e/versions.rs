//! Versioned lock buckets, differential: every scenario runs against LocalStack directly (the
//! reference for S3's behaviour) and through wormgate's own versioning over the embedded store
//! (the `gateway` profile), and the two transcripts must be the same: status, error code, the
//! headers clients read (`x-amz-delete-marker`, the version a reply names), bodies, and listing
//! contents. Version ids differ by nature: each is written as the symbol of the write that made
//! it (`k#2` is the second version written to `k`, `k#m1` its first delete marker).
//!
//! After the scenarios, the store behind the gateway is checked: no name the gateway wrote was
//! ever replaced (every version's bytes are still the bytes written).

use std::collections::HashMap;
use std::fmt::Write as _;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete, ObjectIdentifier,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
};
use wormgate_tests::locks::in_secs;
use wormgate_tests::{LocalStack, Stack, s3_client};

/// One S3 call of a scenario. `ver` picks a version by the order it was written to its key
/// (`Some(1)` the first; `Some(0)` the `null` version, an object from before versioning);
/// `None` is the call without a version id.
#[derive(Debug, Clone)]
enum Step {
    Put(&'static str, &'static str),
    PutLocked(&'static str, &'static str, ObjectLockMode, i64),
    /// PutObject with `If-None-Match: *`.
    PutIfAbsent(&'static str, &'static str),
    /// PutObject with `If-Match:` the ETag of a body (the first).
    PutIfMatch(&'static str, &'static str, &'static str),
    Get(&'static str, Option<usize>),
    Head(&'static str, Option<usize>),
    Delete(&'static str, Option<usize>),
    /// Deletes a key's `n`th delete marker by its version id.
    DeleteMarker(&'static str, usize),
    DeleteMany(Vec<(&'static str, Option<usize>)>),
    Copy(&'static str, Option<usize>, &'static str),
    Multipart(&'static str, &'static str),
    PutRetention(&'static str, Option<usize>, ObjectLockMode, i64, bool),
    GetRetention(&'static str, Option<usize>),
    LegalHold(&'static str, Option<usize>, bool),
    GetLegalHold(&'static str, Option<usize>),
    DefaultRetention(ObjectLockMode, i32),
    GetVersioning,
    /// PutBucketVersioning: `Enabled`, or `Suspended` if false.
    PutVersioning(bool),
    /// ListObjectsV2 followed page by page: prefix, delimiter, max-keys.
    ListV2(&'static str, Option<&'static str>, i32),
    ListV1(&'static str, Option<&'static str>, i32),
    ListVersions(&'static str, Option<&'static str>, i32),
}

/// One endpoint under test, and the version ids it gave, by symbol.
struct Side {
    client: Client,
    bucket: String,
    /// key → symbols of its writes in order (`k#1`, `k#m1`, …) and their ids.
    written: HashMap<String, Vec<(String, String)>>,
    by_id: HashMap<String, String>,
    secs_offset: i64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `200` for a call that succeeded, else its status and error code.
fn status_of<T, E, R>(r: &Result<T, SdkError<E, R>>) -> String
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug + wormgate_tests::locks::HasStatus,
{
    r.as_ref().map_or_else(code_of, |_| "200".into())
}

fn code_of<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug + wormgate_tests::locks::HasStatus,
{
    let status = e
        .raw_response()
        .map_or(0, wormgate_tests::locks::HasStatus::status);
    format!("{status} {}", e.code().unwrap_or("-"))
}

fn marker_header(raw: Option<&aws_sdk_s3::config::http::HttpResponse>) -> String {
    raw.and_then(|r| r.headers().get("x-amz-delete-marker"))
        .map(|v| format!(" delete-marker={v}"))
        .unwrap_or_default()
}

impl Side {
    fn remember(&mut self, key: &str, id: Option<&str>, marker: bool) -> String {
        let Some(id) = id.filter(|i| *i != "null") else {
            return "null".into();
        };
        if let Some(s) = self.by_id.get(id) {
            return s.clone();
        }
        let list = self.written.entry(key.to_owned()).or_default();
        let n = list
            .iter()
            .filter(|(s, _)| s.contains("#m") == marker)
            .count()
            + 1;
        let symbol = if marker {
            format!("{key}#m{n}")
        } else {
            format!("{key}#{n}")
        };
        list.push((symbol.clone(), id.to_owned()));
        self.by_id.insert(id.to_owned(), symbol.clone());
        symbol
    }

    fn symbol(&self, id: Option<&str>) -> String {
        match id {
            None => "-".into(),
            Some("null") => "null".into(),
            Some(id) => self
                .by_id
                .get(id)
                .cloned()
                .unwrap_or_else(|| "<unknown id>".into()),
        }
    }

    fn version(&self, key: &str, n: Option<usize>) -> Option<String> {
        let n = n?;
        if n == 0 {
            return Some("null".into());
        }
        let list = self.written.get(key)?;
        list.iter()
            .filter(|(s, _)| !s.contains("#m"))
            .nth(n - 1)
            .map(|(_, id)| id.clone())
    }

    fn marker(&self, key: &str, n: usize) -> Option<String> {
        self.written
            .get(key)?
            .iter()
            .filter(|(s, _)| s.contains("#m"))
            .nth(n - 1)
            .map(|(_, id)| id.clone())
    }

    fn until(&self, secs: i64) -> aws_sdk_s3::primitives::DateTime {
        in_secs(secs + self.secs_offset)
    }

    async fn run(&mut self, step: &Step) -> String {
        let c = self.client.clone();
        let b = self.bucket.clone();
        match step.clone() {
            Step::Put(k, body) | Step::PutIfAbsent(k, body) | Step::PutIfMatch(k, _, body) => {
                let mut put = c
                    .put_object()
                    .bucket(&b)
                    .key(k)
                    .body(ByteStream::from_static(body.as_bytes()));
                if let Step::PutIfAbsent(..) = step {
                    put = put.if_none_match("*");
                }
                if let Step::PutIfMatch(_, was, _) = step {
                    use md5::Digest as _;
                    put = put.if_match(format!("\"{}\"", hex(&md5::Md5::digest(was.as_bytes()))));
                }
                match put.send().await {
                    Ok(o) => format!("200 version={}", self.remember(k, o.version_id(), false)),
                    Err(e) => code_of(&e),
                }
            }
            Step::PutLocked(k, body, mode, secs) => {
                let r = c
                    .put_object()
                    .bucket(&b)
                    .key(k)
                    .body(ByteStream::from_static(body.as_bytes()))
                    .object_lock_mode(mode)
                    .object_lock_retain_until_date(self.until(secs))
                    .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
                    .send()
                    .await;
                match r {
                    Ok(o) => format!("200 version={}", self.remember(k, o.version_id(), false)),
                    Err(e) => code_of(&e),
                }
            }
            Step::Get(k, n) => {
                let r = c
                    .get_object()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .send()
                    .await;
                match r {
                    Ok(o) => {
                        let v = self.symbol(o.version_id());
                        let lock = o
                            .object_lock_mode()
                            .map(|m| format!(" lock={}", m.as_str()))
                            .unwrap_or_default();
                        let body = o
                            .body
                            .collect()
                            .await
                            .map(|b| b.into_bytes().to_vec())
                            .unwrap_or_default();
                        format!(
                            "200 version={v}{lock} body={}",
                            String::from_utf8_lossy(&body)
                        )
                    }
                    Err(e) => format!("{}{}", code_of(&e), marker_header(e.raw_response())),
                }
            }
            Step::Head(k, n) => {
                let r = c
                    .head_object()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .send()
                    .await;
                match r {
                    Ok(o) => format!(
                        "200 version={} length={:?}",
                        self.symbol(o.version_id()),
                        o.content_length()
                    ),
                    // A HEAD has no body: its code is only the status.
                    Err(e) => format!(
                        "{}{}",
                        e.raw_response()
                            .map_or(0, wormgate_tests::locks::HasStatus::status),
                        marker_header(e.raw_response())
                    ),
                }
            }
            Step::Delete(k, n) => {
                let r = c
                    .delete_object()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .send()
                    .await;
                match r {
                    Ok(o) => {
                        let marker = o.delete_marker() == Some(true);
                        let v = if n.is_none() {
                            self.remember(k, o.version_id(), marker)
                        } else {
                            self.symbol(o.version_id())
                        };
                        format!("204 version={v} delete-marker={marker}")
                    }
                    Err(e) => code_of(&e),
                }
            }
            Step::DeleteMarker(k, n) => {
                let r = c
                    .delete_object()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.marker(k, n))
                    .send()
                    .await;
                match r {
                    Ok(o) => format!(
                        "204 version={} delete-marker={}",
                        self.symbol(o.version_id()),
                        o.delete_marker() == Some(true)
                    ),
                    Err(e) => code_of(&e),
                }
            }
            Step::DeleteMany(keys) => {
                let objects: Vec<ObjectIdentifier> = keys
                    .iter()
                    .map(|(k, n)| {
                        ObjectIdentifier::builder()
                            .key(*k)
                            .set_version_id(self.version(k, *n))
                            .build()
                            .expect("identifier")
                    })
                    .collect();
                let r = c
                    .delete_objects()
                    .bucket(&b)
                    .delete(
                        Delete::builder()
                            .set_objects(Some(objects))
                            .build()
                            .expect("delete"),
                    )
                    .send()
                    .await;
                match r {
                    Ok(o) => {
                        let mut lines: Vec<String> = Vec::new();
                        for d in o.deleted() {
                            let k = d.key().unwrap_or_default().to_owned();
                            let marker = d.delete_marker() == Some(true);
                            let made = if d.version_id().is_none() {
                                self.remember(&k, d.delete_marker_version_id(), marker)
                            } else {
                                self.symbol(d.version_id())
                            };
                            lines.push(format!("deleted {k} {made} marker={marker}"));
                        }
                        for e in o.errors() {
                            lines.push(format!(
                                "error {} {} {}",
                                e.key().unwrap_or_default(),
                                self.symbol(e.version_id()),
                                e.code().unwrap_or_default()
                            ));
                        }
                        lines.sort();
                        format!("200 [{}]", lines.join("; "))
                    }
                    Err(e) => code_of(&e),
                }
            }
            Step::Copy(src, n, dst) => {
                let mut source = format!("{b}/{src}");
                if let Some(v) = self.version(src, n) {
                    source.push_str(&format!("?versionId={v}"));
                }
                match c
                    .copy_object()
                    .bucket(&b)
                    .key(dst)
                    .copy_source(source)
                    .send()
                    .await
                {
                    Ok(o) => format!(
                        "200 version={} source={}",
                        self.remember(dst, o.version_id(), false),
                        self.symbol(o.copy_source_version_id())
                    ),
                    Err(e) => code_of(&e),
                }
            }
            Step::Multipart(k, body) => {
                let up = match c.create_multipart_upload().bucket(&b).key(k).send().await {
                    Ok(u) => u,
                    Err(e) => return code_of(&e),
                };
                let id = up.upload_id().unwrap_or_default().to_owned();
                let key_echo = up.key().unwrap_or_default().to_owned();
                let part = c
                    .upload_part()
                    .bucket(&b)
                    .key(k)
                    .upload_id(&id)
                    .part_number(1)
                    .body(ByteStream::from_static(body.as_bytes()))
                    .send()
                    .await
                    .expect("upload part");
                let parts = c
                    .list_parts()
                    .bucket(&b)
                    .key(k)
                    .upload_id(&id)
                    .send()
                    .await
                    .expect("list parts");
                let done = c
                    .complete_multipart_upload()
                    .bucket(&b)
                    .key(k)
                    .upload_id(&id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .parts(
                                CompletedPart::builder()
                                    .part_number(1)
                                    .set_e_tag(part.e_tag().map(str::to_owned))
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await;
                match done {
                    Ok(o) => format!(
                        "200 key={key_echo} parts={} listed-key={} version={} completed-key={}",
                        parts.parts().len(),
                        parts.key().unwrap_or_default(),
                        self.remember(k, o.version_id(), false),
                        o.key().unwrap_or_default()
                    ),
                    Err(e) => code_of(&e),
                }
            }
            Step::PutRetention(k, n, mode, secs, bypass) => {
                let mode = ObjectLockRetentionMode::from(mode.as_str());
                let r = c
                    .put_object_retention()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .retention(
                        ObjectLockRetention::builder()
                            .mode(mode)
                            .retain_until_date(self.until(secs))
                            .build(),
                    )
                    .set_bypass_governance_retention(bypass.then_some(true))
                    .send()
                    .await;
                status_of(&r)
            }
            Step::GetRetention(k, n) => {
                match c
                    .get_object_retention()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .send()
                    .await
                {
                    Ok(o) => format!(
                        "200 mode={:?}",
                        o.retention()
                            .and_then(|r| r.mode())
                            .map(|m| m.as_str().to_owned())
                    ),
                    Err(e) => code_of(&e),
                }
            }
            Step::LegalHold(k, n, on) => {
                let status = if on {
                    ObjectLockLegalHoldStatus::On
                } else {
                    ObjectLockLegalHoldStatus::Off
                };
                let r = c
                    .put_object_legal_hold()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .legal_hold(ObjectLockLegalHold::builder().status(status).build())
                    .send()
                    .await;
                status_of(&r)
            }
            Step::GetLegalHold(k, n) => {
                match c
                    .get_object_legal_hold()
                    .bucket(&b)
                    .key(k)
                    .set_version_id(self.version(k, n))
                    .send()
                    .await
                {
                    Ok(o) => format!(
                        "200 {:?}",
                        o.legal_hold()
                            .and_then(|h| h.status())
                            .map(|s| s.as_str().to_owned())
                    ),
                    Err(e) => code_of(&e),
                }
            }
            Step::DefaultRetention(mode, days) => {
                let r = c
                    .put_object_lock_configuration()
                    .bucket(&b)
                    .object_lock_configuration(
                        ObjectLockConfiguration::builder()
                            .object_lock_enabled(ObjectLockEnabled::Enabled)
                            .rule(
                                ObjectLockRule::builder()
                                    .default_retention(
                                        DefaultRetention::builder()
                                            .mode(ObjectLockRetentionMode::from(mode.as_str()))
                                            .days(days)
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await;
                status_of(&r)
            }
            Step::GetVersioning => match c.get_bucket_versioning().bucket(&b).send().await {
                Ok(o) => format!("200 {:?}", o.status().map(|s| s.as_str().to_owned())),
                Err(e) => code_of(&e),
            },
            Step::PutVersioning(enable) => {
                let status = if enable {
                    aws_sdk_s3::types::BucketVersioningStatus::Enabled
                } else {
                    aws_sdk_s3::types::BucketVersioningStatus::Suspended
                };
                let r = c
                    .put_bucket_versioning()
                    .bucket(&b)
                    .versioning_configuration(
                        aws_sdk_s3::types::VersioningConfiguration::builder()
                            .status(status)
                            .build(),
                    )
                    .send()
                    .await;
                status_of(&r)
            }
            Step::ListV2(prefix, delimiter, max) => self.list_v2(prefix, delimiter, max).await,
            Step::ListV1(prefix, delimiter, max) => self.list_v1(prefix, delimiter, max).await,
            Step::ListVersions(prefix, delimiter, max) => {
                self.list_versions(prefix, delimiter, max).await
            }
        }
    }

    async fn list_v2(&self, prefix: &str, delimiter: Option<&str>, max: i32) -> String {
        let mut out = String::new();
        let mut token: Option<String> = None;
        for page in 0.. {
            assert!(page < 200, "a listing that does not end");
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .max_keys(max)
                .set_continuation_token(token.clone())
                .send()
                .await;
            let o = match r {
                Ok(o) => o,
                Err(e) => return code_of(&e),
            };
            let _ = write!(out, "[");
            for c in o.contents() {
                let _ = write!(
                    out,
                    "{}({}) ",
                    c.key().unwrap_or_default(),
                    c.size().unwrap_or_default()
                );
            }
            for p in o.common_prefixes() {
                let _ = write!(out, "{}/ ", p.prefix().unwrap_or_default());
            }
            let _ = write!(
                out,
                "count={:?} truncated={:?}] ",
                o.key_count(),
                o.is_truncated()
            );
            if o.is_truncated() != Some(true) {
                break;
            }
            token = o.next_continuation_token().map(str::to_owned);
        }
        out
    }

    async fn list_v1(&self, prefix: &str, delimiter: Option<&str>, max: i32) -> String {
        let mut out = String::new();
        let mut marker: Option<String> = None;
        for page in 0.. {
            assert!(page < 200, "a listing that does not end");
            let r = self
                .client
                .list_objects()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .max_keys(max)
                .set_marker(marker.clone())
                .send()
                .await;
            let o = match r {
                Ok(o) => o,
                Err(e) => return code_of(&e),
            };
            let _ = write!(out, "[");
            for c in o.contents() {
                let _ = write!(out, "{} ", c.key().unwrap_or_default());
            }
            for p in o.common_prefixes() {
                let _ = write!(out, "{}/ ", p.prefix().unwrap_or_default());
            }
            let _ = write!(out, "] ");
            if o.is_truncated() != Some(true) {
                break;
            }
            // As clients do: NextMarker, else the last name of the page.
            marker = o.next_marker().map(str::to_owned).or_else(|| {
                let last_key = o.contents().last().and_then(|c| c.key()).map(str::to_owned);
                let last_prefix = o
                    .common_prefixes()
                    .last()
                    .and_then(|p| p.prefix())
                    .map(str::to_owned);
                last_key.into_iter().chain(last_prefix).max()
            });
        }
        out
    }

    async fn list_versions(&self, prefix: &str, delimiter: Option<&str>, max: i32) -> String {
        let mut out = String::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        for page in 0.. {
            assert!(page < 200, "a listing that does not end");
            let r = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .max_keys(max)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await;
            let o = match r {
                Ok(o) => o,
                Err(e) => return code_of(&e),
            };
            // Versions and delete markers in one order: key, then as listed.
            let mut entries: Vec<(String, usize, String)> = Vec::new();
            for (i, v) in o.versions().iter().enumerate() {
                entries.push((
                    v.key().unwrap_or_default().to_owned(),
                    i,
                    format!(
                        "{}{} ",
                        self.symbol(v.version_id()),
                        if v.is_latest() == Some(true) { "*" } else { "" }
                    ),
                ));
            }
            let _ = write!(out, "[");
            let mut markers: Vec<String> = o
                .delete_markers()
                .iter()
                .map(|m| {
                    format!(
                        "{}{} ",
                        self.symbol(m.version_id()),
                        if m.is_latest() == Some(true) { "*" } else { "" }
                    )
                })
                .collect();
            markers.sort();
            entries.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            for (_, _, e) in entries {
                out.push_str(&e);
            }
            let _ = write!(out, "markers: {}", markers.concat());
            for p in o.common_prefixes() {
                let _ = write!(out, "{}/ ", p.prefix().unwrap_or_default());
            }
            let _ = write!(out, "] ");
            if o.is_truncated() != Some(true) {
                break;
            }
            key_marker = o.next_key_marker().map(str::to_owned);
            version_marker = o.next_version_id_marker().map(str::to_owned);
        }
        out
    }
}

/// A listing's pages as entries split at page ends, less a last page that is empty: S3 may
/// say "truncated" on a full page that nothing follows (LocalStack does, with a delimiter),
/// and a client then reads one empty page. Where entries fall, and in what order, is kept.
fn pages(listing: &str) -> String {
    let empty = ["[count=Some(0)] ", "[markers: ] ", "[] "];
    let mut out = listing.to_owned();
    while let Some(stripped) = empty.iter().find_map(|e| out.strip_suffix(e)) {
        out = stripped.to_owned();
    }
    out
}

/// The transcript of a scenario on one side.
async fn transcript(side: &mut Side, steps: &[Step]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let mut answer = side.run(step).await;
        if matches!(step, ListV2(..) | ListV1(..) | ListVersions(..)) {
            answer = pages(&answer);
        }
        lines.push(format!("{i:02} {step:?} -> {answer}"));
    }
    lines
}

/// What a scenario's bucket is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// With object lock (and so versioning).
    Locked,
    /// Without either: a scenario enables versioning itself.
    Plain,
}

async fn new_side(client: Client, name: &str, made: Made) -> Side {
    let bucket = wormgate_tests::unique_bucket(name);
    client
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(made == Made::Locked)
        .send()
        .await
        .expect("create a bucket");
    Side {
        client,
        bucket,
        written: HashMap::new(),
        by_id: HashMap::new(),
        secs_offset: 0,
    }
}

use Step::*;

/// The scenarios, each named and said where its sequence comes from.
fn scenarios() -> Vec<(&'static str, Made, Vec<Step>)> {
    use ObjectLockMode::{Compliance, Governance};
    vec![
        (
            // S3's documented behaviour of versioned buckets: versions, delete markers,
            // reads by id, a marker removed by id.
            "versions and delete markers",
            Made::Locked,
            vec![
                GetVersioning,
                Put("a b", "one"),
                Put("a b", "two"),
                Put("a b", "three"),
                Get("a b", None),
                Get("a b", Some(1)),
                Head("a b", Some(2)),
                Delete("a b", None),
                Get("a b", None),
                Head("a b", None),
                Get("a b", Some(3)),
                ListV2("", None, 1000),
                ListVersions("", None, 1000),
                DeleteMarker("a b", 1),
                Get("a b", None),
                Delete("a b", Some(2)),
                ListVersions("", None, 1000),
                Get("missing", None),
                Delete("missing", None),
                ListVersions("", None, 1000),
            ],
        ),
        (
            // Listings at every page boundary: keys that are prefixes of others, spaces,
            // `!`, unicode, deleted keys, delimiters other than `/`, 3 versions of a key.
            "listings",
            Made::Locked,
            vec![
                Put("a", "1"),
                Put("a b", "1"),
                Put("a!", "1"),
                Put("a/b", "1"),
                Put("a/c/d", "1"),
                Put("a/c/e", "1"),
                Put("ab", "1"),
                Put("ab", "2"),
                Put("ab", "3"),
                Put("é", "1"),
                Put("z z", "1"),
                Put("gone/x", "1"),
                Delete("gone/x", None),
                Put("a/c/e", "2"),
                Delete("a!", None),
                ListV2("", None, 1000),
                ListV2("", None, 1),
                ListV2("", None, 2),
                ListV2("", Some("/"), 1000),
                ListV2("", Some("/"), 1),
                ListV2("a", Some("/"), 2),
                ListV2("a/", Some("/"), 1),
                ListV2("", Some(" "), 3),
                ListV2("", Some("b"), 2),
                ListV1("", None, 2),
                ListV1("", Some("/"), 1),
                ListVersions("", None, 1000),
                ListVersions("", None, 1),
                ListVersions("", None, 2),
                ListVersions("", Some("/"), 1000),
                ListVersions("a", Some("/"), 1),
                ListVersions("ab", None, 2),
            ],
        ),
        (
            // Locks apply per version, as on a native bucket.
            "locks per version",
            Made::Locked,
            vec![
                PutLocked("k", "locked", Compliance, 3600),
                Put("k", "free"),
                Delete("k", Some(1)),
                Delete("k", Some(2)),
                Get("k", None),
                GetRetention("k", Some(1)),
                GetRetention("k", None),
                Delete("k", None),
                GetRetention("k", None),
                PutRetention("k", Some(1), Compliance, 60, false),
                PutRetention("k", Some(1), Compliance, 7200, false),
                LegalHold("k", Some(1), true),
                GetLegalHold("k", Some(1)),
                LegalHold("k", Some(1), false),
                GetLegalHold("k", Some(1)),
                Copy("k", Some(1), "copy"),
                Get("copy", None),
                Multipart("k", "parts"),
                Get("k", None),
                DeleteMany(vec![
                    ("k", Some(1)),
                    ("k", Some(3)),
                    ("copy", None),
                    ("none", None),
                ]),
                ListVersions("", None, 1000),
            ],
        ),
        (
            // kopia (repo/blob/s3 in its source): blobs written with a retention, maintenance
            // extends the retention of every blob without a version id, deletes without a
            // version id, and a point-in-time view lists versions.
            "kopia",
            Made::Locked,
            vec![
                PutLocked("p0001", "pack", Governance, 600),
                PutLocked("q0001", "index", Governance, 600),
                PutRetention("p0001", None, Governance, 3600, false),
                PutRetention("q0001", None, Governance, 3600, false),
                Put("q0001", "index v2"),
                PutRetention("q0001", None, Governance, 3600, false),
                Delete("p0001", None),
                Delete("q0001", None),
                Get("p0001", Some(1)),
                ListV2("", None, 1000),
                ListVersions("", None, 1000),
                Delete("p0001", Some(1)),
            ],
        ),
        (
            // Veeam (its object storage guide: versioning required, no default retention):
            // checkpoints listed with a prefix and a `/` delimiter, retention extended and
            // objects deleted by version id.
            "veeam",
            Made::Locked,
            vec![
                PutLocked(
                    "Veeam/Backup/job/Clients/c1/blocks/b1",
                    "block",
                    Compliance,
                    600,
                ),
                PutLocked(
                    "Veeam/Backup/job/Clients/c1/blocks/b2",
                    "block",
                    Compliance,
                    600,
                ),
                Put("Veeam/Backup/job/Clients/c1/CheckpointId/1", "cp"),
                Put("Veeam/Archive/x", "archive"),
                ListVersions("Veeam/Backup/", Some("/"), 1000),
                ListVersions("Veeam/Backup/job/Clients/c1/", Some("/"), 1),
                PutRetention(
                    "Veeam/Backup/job/Clients/c1/blocks/b1",
                    Some(1),
                    Compliance,
                    7200,
                    false,
                ),
                Delete("Veeam/Backup/job/Clients/c1/blocks/b1", Some(1)),
                Delete("Veeam/Backup/job/Clients/c1/CheckpointId/1", Some(1)),
                ListV2("Veeam/", Some("/"), 1000),
                ListV2("Veeam/Backup/job/Clients/c1/", Some("/"), 1000),
            ],
        ),
        (
            // restic on a bucket with a default retention (its docs, "S3 object lock"): lock
            // files are written, deleted and rewritten every few minutes; packs stay.
            "restic with a default retention",
            Made::Locked,
            vec![
                DefaultRetention(Governance, 1),
                Put("config", "c"),
                Put("data/ab/abcd", "pack"),
                Put("locks/l1", "lock"),
                Delete("locks/l1", None),
                Put("locks/l2", "lock"),
                Delete("locks/l2", None),
                Put("locks/l3", "lock"),
                ListV2("locks/", None, 1000),
                ListV1("", Some("/"), 1000),
                Delete("data/ab/abcd", Some(1)),
                GetRetention("data/ab/abcd", None),
                Delete("data/ab/abcd", None),
                ListVersions("data/", None, 1000),
            ],
        ),
        (
            // Conditional writes (S3 user guide, "Add preconditions to S3 operations with
            // conditional requests"): If-None-Match: * fails while the key has a current
            // version, not after a delete marker; If-Match compares the current version's ETag.
            "conditional writes",
            Made::Locked,
            vec![
                PutIfAbsent("c", "one"),
                PutIfAbsent("c", "two"),
                PutIfMatch("c", "one", "three"),
                PutIfMatch("c", "one", "four"),
                PutIfMatch("missing", "one", "x"),
                Delete("c", None),
                PutIfMatch("c", "three", "five"),
                PutIfAbsent("c", "six"),
                Get("c", None),
                ListVersions("c", None, 1000),
            ],
        ),
        (
            // A bucket made without lock on which versioning is enabled later (S3 user guide,
            // "Working with objects in a versioning-enabled bucket": objects stored before
            // have the version id null; Commvault enables versioning itself).
            "plain bucket, versioning enabled",
            Made::Plain,
            vec![
                GetVersioning,
                Put("old", "before"),
                Put("old", "overwritten"),
                Put("dir/x", "x0"),
                PutVersioning(true),
                GetVersioning,
                Get("old", None),
                Put("old", "v1"),
                Put("old", "v2"),
                Get("old", Some(0)),
                Get("old", Some(1)),
                ListVersions("", None, 1000),
                ListVersions("", None, 2),
                ListV2("", Some("/"), 1000),
                PutVersioning(true),
                Delete("old", None),
                Get("old", None),
                Delete("old", Some(0)),
                Get("old", Some(0)),
                ListVersions("", None, 1000),
                Delete("dir/x", None),
                ListV2("", None, 1000),
                // (A locked PUT is left out: LocalStack takes it on a bucket without lock,
                // where S3 answers 400 InvalidRequest, as wormgate does.)
                PutRetention("old", Some(1), Governance, 60, false),
                ListVersions("", Some("/"), 1000),
            ],
        ),
    ]
}

#[tokio::test]
async fn wormgate_versions_match_localstack() {
    let localstack = LocalStack::start().await;
    let reference_client = s3_client(
        &format!("http://127.0.0.1:{}", localstack.port),
        "test",
        "test",
    );
    let stack = Stack::start().await;
    let mut differences = Vec::new();
    let mut unanswered = Vec::new();
    let mut count = 0;
    for (name, made, steps) in scenarios() {
        let mut reference = new_side(reference_client.clone(), "ref", made).await;
        let mut ours = new_side(stack.admin(), "ours", made).await;
        let want = transcript(&mut reference, &steps).await;
        let got = transcript(&mut ours, &steps).await;
        count += steps.len();
        for (w, g) in want.iter().zip(&got) {
            if w.contains("-> 500 ") {
                // The reference failed (LocalStack answers some paginated listings with 500):
                // nothing to compare, and said so.
                unanswered.push(format!("{name}: {g}"));
            } else if w != g {
                differences.push(format!("{name}:\n  LocalStack: {w}\n  wormgate:   {g}"));
            }
        }
    }
    println!(
        "{} scenarios, {count} steps, {} differences, {} steps LocalStack could not answer:",
        scenarios().len(),
        differences.len(),
        unanswered.len()
    );
    for u in &unanswered {
        println!("  {u}");
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Everything a versioned bucket holds, as clients see it: every version and delete marker
/// (ListObjectVersions), the current listing, and every lock (the audit).
async fn everything(stack: &Stack, bucket: &str) -> (String, String, Vec<String>) {
    let mut side = Side {
        client: stack.admin(),
        bucket: bucket.to_owned(),
        written: HashMap::new(),
        by_id: HashMap::new(),
        secs_offset: 0,
    };
    // Symbols in listing order: the same versions give the same symbols.
    let raw = side
        .client
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("versions");
    let mut ids: Vec<(String, String, bool)> = raw
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap_or_default().to_owned(),
                v.version_id().unwrap_or_default().to_owned(),
                false,
            )
        })
        .chain(raw.delete_markers().iter().map(|m| {
            (
                m.key().unwrap_or_default().to_owned(),
                m.version_id().unwrap_or_default().to_owned(),
                true,
            )
        }))
        .collect();
    ids.sort();
    for (k, id, marker) in &ids {
        side.remember(k, Some(id), *marker);
    }
    let versions = side.list_versions("", None, 2).await;
    let current = side.list_v2("", None, 2).await;
    let audit = stack
        .admin_get(
            &format!("/audit/locks?bucket={bucket}&format=csv"),
            Some(wormgate_tests::ADMIN_TOKEN),
        )
        .await;
    // Everything but where the record came from and when it was written, which a rebuild
    // sets anew, and the gap in seconds, which counts from the moment of the export.
    let locks = audit
        .body
        .lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| ![9, 10, 11].contains(i))
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    (versions, current, locks)
}

/// Stops the gateway, deletes its index, runs `index rebuild` and starts the gateway again.
async fn lose_index_and_rebuild(stack: &mut Stack) -> wormgate::ops::rebuild::RebuildReport {
    let dir = stack.settings.locks.index_dir.clone();
    stack.stop_gateway_for_test().await;
    std::fs::remove_dir_all(&dir).expect("lose the index");
    let report = {
        let server = wormgate::server::Server::new(&stack.settings)
            .await
            .expect("server");
        server.rebuild_index().await.expect("rebuild")
    };
    stack.restart_gateway().await;
    report
}

/// `index rebuild` after the index is lost reproduces every version, delete marker and lock:
/// versions and markers live in their backend names, locks in their metadata, the bucket's
/// lock configuration in its record on the backend.
#[tokio::test]
async fn a_lost_index_is_rebuilt_with_every_version_marker_and_lock() {
    let mut stack = Stack::start().await;
    let mut side = new_side(stack.admin(), "rebuild", Made::Locked).await;
    let bucket = side.bucket.clone();
    for step in [
        DefaultRetention(ObjectLockMode::Governance, 1),
        PutLocked("a", "1", ObjectLockMode::Compliance, 3600),
        Put("a", "2"),
        Delete("a", None),
        Put("b b", "1"),
        Put("b b", "2"),
        LegalHold("b b", Some(1), true),
        PutRetention("b b", Some(2), ObjectLockMode::Governance, 200_000, false),
        Multipart("c/d", "parts"),
        Delete("e", None),
    ] {
        let answer = side.run(&step).await;
        assert!(
            answer.starts_with("200") || answer.starts_with("204"),
            "{step:?}: {answer}"
        );
    }
    let before = everything(&stack, &bucket).await;
    assert!(before.2.len() > 4, "{:?}", before.2);

    let report = lose_index_and_rebuild(&mut stack).await;
    println!("rebuild: {report:?}");
    assert_eq!(report.unreadable, 0);
    let after = everything(&stack, &bucket).await;
    assert_eq!(after.0, before.0, "versions and markers");
    assert_eq!(after.1, before.1, "current objects");
    assert_eq!(after.2, before.2, "locks");
    // The default retention came back from the bucket's record on the backend.
    let config = stack
        .admin()
        .get_object_lock_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lock configuration");
    let days = config
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .and_then(|d| d.days());
    assert_eq!(days, Some(1));
    println!(
        "versions and markers: {}\nlocks before and after: {}",
        before.0,
        before.2.len() - 1
    );
}

/// Versioning enabled on a bucket without lock is a record on the store: another gateway
/// serves the versions too, and so does this one after its index is lost and rebuilt, which
/// takes the bucket for a versioned bucket, not a lock bucket (no retention can be set in it).
/// Once enabled it cannot be suspended (501); once every version is deleted, the bucket can be.
#[tokio::test]
async fn versioning_enabled_on_a_plain_bucket_is_kept_on_the_store() {
    let mut stack = Stack::start().await;
    let mut side = new_side(stack.admin(), "plainver", Made::Plain).await;
    let bucket = side.bucket.clone();
    for step in [
        Put("k", "before"),
        PutVersioning(true),
        Put("k", "v1"),
        Delete("k", None),
        Put("k", "v2"),
    ] {
        let answer = side.run(&step).await;
        assert!(answer.starts_with("20"), "{step:?}: {answer}");
    }
    assert_eq!(
        side.run(&PutVersioning(false)).await,
        "501 NotImplemented",
        "versioning served by the gateway stays enabled"
    );
    let listed = side.list_versions("", None, 1000).await;
    assert_eq!(listed, "[k#2* k#1 null markers: k#m1 ] ");

    // Another gateway reads the record: the same versions, versioning enabled.
    let other = stack.beside().await;
    let mut there = Side {
        client: other.admin(),
        bucket: bucket.clone(),
        written: side.written.clone(),
        by_id: side.by_id.clone(),
        secs_offset: 0,
    };
    assert_eq!(there.run(&GetVersioning).await, "200 Some(\"Enabled\")");
    assert_eq!(there.list_versions("", None, 1000).await, listed);
    assert_eq!(there.run(&Get("k", None)).await, "200 version=k#2 body=v2");

    // The index is lost and rebuilt: still versioned, and not a lock bucket.
    lose_index_and_rebuild(&mut stack).await;
    side.client = stack.admin();
    assert_eq!(side.run(&GetVersioning).await, "200 Some(\"Enabled\")");
    assert_eq!(side.list_versions("", None, 1000).await, listed);
    let retention = side
        .run(&PutRetention(
            "k",
            Some(1),
            ObjectLockMode::Governance,
            60,
            false,
        ))
        .await;
    assert_eq!(retention, "400 InvalidRequest", "no lock on a plain bucket");

    // Every version and marker deleted by id: the bucket is empty and can be deleted.
    for step in [
        Delete("k", Some(1)),
        Delete("k", Some(2)),
        DeleteMarker("k", 1),
        Delete("k", Some(0)),
    ] {
        let answer = side.run(&step).await;
        assert!(answer.starts_with("204"), "{step:?}: {answer}");
    }
    side.client
        .delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("an empty versioned bucket is deleted");
    let gone = side.client.head_bucket().bucket(&bucket).send().await;
    assert!(gone.is_err(), "the bucket is gone");
}

/// The latest version a gateway remembers is only a shortcut for reads: when it is gone from
/// the store (deleted through another gateway), the store's listing answers, and a read never
/// fails for it.
#[tokio::test]
async fn a_remembered_latest_that_is_gone_is_read_again_from_the_store() {
    let stack = Stack::start().await;
    let mut side = new_side(stack.admin(), "remembered", Made::Locked).await;
    for step in [Put("k", "one"), Put("k", "two"), Get("k", None)] {
        side.run(&step).await;
    }
    let second = side.version("k", Some(2)).expect("the second version");
    // Another gateway deletes the second version: here, the store itself.
    stack
        .direct()
        .delete_object()
        .bucket(&side.bucket)
        .key(wormgate_tests::locks::backend_name("k", Some(&second)))
        .send()
        .await
        .expect("delete on the store");
    assert_eq!(side.run(&Get("k", None)).await, "200 version=k#1 body=one");
    assert_eq!(
        side.run(&Head("k", None)).await,
        "200 version=k#1 length=Some(3)"
    );
}

/// ListMultipartUploads on a versioned bucket names each upload by the client's key and the
/// upload id the client was given (never a backend name), with prefix and page markers, and
/// every id it lists is one the bucket takes. The `gateway` profile over LocalStack used as a
/// plain store (s3s-fs has no ListMultipartUploads).
#[tokio::test]
async fn multipart_uploads_are_listed_by_their_keys_and_ids() {
    let localstack = LocalStack::start().await;
    let stack = Stack::start_remote(localstack.backend(), policy::lock::Profile::Gateway).await;
    let s3 = stack.gateway();
    let bucket = wormgate_tests::locks::lock_bucket(&s3, "uploads").await;
    let mut started = Vec::new();
    for key in ["a/1", "a/2", "b b", "a/1"] {
        let up = s3
            .create_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("CreateMultipartUpload");
        started.push((key.to_owned(), up.upload_id().expect("an id").to_owned()));
    }
    started.sort();
    let listed =
        |out: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
            out.uploads()
                .iter()
                .map(|u| {
                    (
                        u.key().expect("key").to_owned(),
                        u.upload_id().expect("id").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
    let all = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListMultipartUploads");
    let mut got = listed(&all);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "key order: {keys:?}");
    got.sort();
    assert_eq!(got, started);

    let under_a = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .prefix("a/")
        .send()
        .await
        .expect("with a prefix");
    assert_eq!(listed(&under_a).len(), 3);

    // One at a time, by the markers each page gives.
    let mut paged = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    for _ in 0..10 {
        let page = s3
            .list_multipart_uploads()
            .bucket(&bucket)
            .max_uploads(1)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .expect("a page");
        paged.extend(listed(&page));
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
    }
    paged.sort();
    assert_eq!(paged, started);

    // Every listed id is one the bucket takes.
    for (key, id) in &started {
        s3.abort_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
            .expect("AbortMultipartUpload by a listed id");
    }
    let none = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListMultipartUploads");
    assert!(listed(&none).is_empty(), "{:?}", listed(&none));
}
