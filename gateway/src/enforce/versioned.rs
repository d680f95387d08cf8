//! Versioned buckets served by the gateway, in the `gateway` profile: every lock bucket is
//! versioned, as on AWS. Versions and delete markers are new backend objects named by
//! `versions::layout`; nothing on the backend is ever overwritten by a client's write.
//!
//! What the handlers here add to the common path:
//! - the address of a version on the backend (`address`), and which version a request means
//!   (`which`: a version id the gateway made, `null` for objects from before, or the latest,
//!   read from the backend's listing of the key's versions, newest first);
//! - reads, delete markers, deletes by version id and the listings (`versions::listing`);
//! - multipart upload ids that carry their version (`<version id>.<backend upload id>`), so
//!   that every part request finds its backend name without asking the index.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use policy::index::LockSource;
use policy::lock::{ObjectRef, Profile, Versioning};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::backend::{Payload, Permit, ReadMethod};
use crate::enforce::{BucketFacts, Call, Gateway};
use crate::error::GatewayError;
use crate::s3::list_xml::{self, Encoding};
use crate::s3::lock_headers;
use crate::s3::lock_xml::{self, escape};
use crate::s3::op::S3Op;
use crate::s3::reply_with;
use crate::s3::target::{CopySource, Target, encode_query_value};
use crate::versions::layout::{self, Kind, VersionId};
use crate::versions::listing::{self, BackendList, BackendPage, ListRequest, Lister};
use crate::versions::replies;

/// How many names a listing asks the backend for at once.
const BACKEND_PAGE: u32 = 1000;

/// Whether the gateway serves the bucket's versions itself.
pub(crate) fn serves_versions(facts: &BucketFacts) -> bool {
    facts.profile != Profile::Native && facts.versioning == Versioning::Enabled
}

/// Which version a request means, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Which {
    /// The object from before versioning, at its own key.
    Null,
    Made(VersionId),
}

impl Which {
    pub(crate) fn object(&self, bucket: &str, key: &str) -> ObjectRef {
        match self {
            Self::Null => ObjectRef::new(bucket, key, None),
            Self::Made(id) => ObjectRef::new(bucket, key, Some(id.as_str())),
        }
    }

    pub(crate) fn id(&self) -> &str {
        match self {
            Self::Null => "null",
            Self::Made(id) => id.as_str(),
        }
    }

    pub(crate) fn is_delete_marker(&self) -> bool {
        matches!(self, Self::Made(id) if id.kind() == Kind::DeleteMarker)
    }
}

/// A client's version id on a versioned bucket.
pub(crate) fn parse_version(v: &str) -> Result<Which, GatewayError> {
    if v == "null" {
        return Ok(Which::Null);
    }
    VersionId::parse(v)
        .map(Which::Made)
        .ok_or_else(|| GatewayError::InvalidArgument("Invalid version id specified".into()))
}

/// A request on an object refuses a delete marker as S3 does: 405 when the marker is named by
/// its version id, else 404 (the key has no current version).
pub(crate) fn not_a_marker(which: &Which, named: bool) -> Result<(), GatewayError> {
    if !which.is_delete_marker() {
        return Ok(());
    }
    Err(if named {
        GatewayError::MethodNotAllowed(
            "The specified method is not allowed against this resource.".into(),
        )
    } else {
        GatewayError::NoSuchKey
    })
}

/// A multipart upload id as clients see it: `<version id>.<tag>.<backend upload id>`. The tag
/// (an HMAC under a key derived from the backend's secret, see `Backend::name_tag`) binds the
/// version to the bucket, the key and the backend's upload: a client cannot point an upload at
/// a version name of its choosing (an existing, locked version's above all).
pub(crate) fn upload_id_for(
    backend: &crate::backend::Backend,
    bucket: &str,
    key: &str,
    id: &VersionId,
    backend_id: &str,
) -> String {
    let tag = backend.name_tag(&["upload", bucket, key, id.as_str(), backend_id]);
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{id}.{hex}.{backend_id}")
}

/// The version and the backend's id of a client's upload id, if the gateway gave it out for
/// this bucket and key.
pub(crate) fn split_upload_id<'a>(
    backend: &crate::backend::Backend,
    bucket: &str,
    key: &str,
    client: &'a str,
) -> Result<(VersionId, &'a str), GatewayError> {
    let no_such = || GatewayError::NoSuchUpload;
    let mut parts = client.splitn(3, '.');
    let (Some(id), Some(tag), Some(backend_id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(no_such());
    };
    let id = VersionId::parse(id)
        .filter(|i| i.kind() == Kind::Object)
        .ok_or_else(no_such)?;
    let tag = (tag.len() == 32)
        .then(|| {
            (0..16)
                .map(|i| u8::from_str_radix(&tag[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten()
        .ok_or_else(no_such)?;
    let genuine = !backend_id.is_empty()
        && backend.name_tag_matches(&["upload", bucket, key, id.as_str(), backend_id], &tag);
    if genuine {
        Ok((id, backend_id))
    } else {
        Err(no_such())
    }
}

/// One bucket's ListObjectsV2, as the versions listings read it.
pub(crate) struct BackendLister<'a> {
    gateway: &'a Gateway,
    bucket: &'a str,
}

#[async_trait::async_trait]
impl Lister for BackendLister<'_> {
    async fn list(&self, r: &BackendList) -> Result<BackendPage, GatewayError> {
        let mut query = format!(
            "list-type=2&max-keys={}&prefix={}",
            r.max_keys,
            encode_query_value(&r.prefix)
        );
        if let Some(d) = &r.delimiter {
            query.push_str(&format!("&delimiter={}", encode_query_value(d)));
        }
        if let Some(t) = &r.continuation {
            query.push_str(&format!("&continuation-token={}", encode_query_value(t)));
        } else if let Some(s) = &r.start_after {
            query.push_str(&format!("&start-after={}", encode_query_value(s)));
        }
        let body = self
            .gateway
            .bucket_listing(self.bucket, &query, "ListObjectsV2")
            .await?;
        list_xml::parse_backend_page(&body)
    }
}

/// The first name under `prefix`, one folder deep (no name the gateway writes there holds a
/// `/` after such a prefix: a file-system store reads one folder, not the bucket).
fn first_of(prefix: &str) -> BackendList {
    BackendList {
        prefix: prefix.to_owned(),
        delimiter: Some("/".into()),
        max_keys: 1,
        ..BackendList::default()
    }
}

/// A backend query value, percent-encoded.
fn q(name: &str, value: &str) -> String {
    format!("&{name}={}", encode_query_value(value))
}

impl Gateway {
    /// One listing page of `bucket` from the backend (`query` names which), read whole under
    /// the listing cap. `what` names the request in errors.
    async fn bucket_listing(
        &self,
        bucket: &str,
        query: &str,
        what: &str,
    ) -> Result<bytes::Bytes, GatewayError> {
        let target = Target {
            bucket: Some(bucket.to_owned()),
            key: None,
        };
        let resp = self
            .read(ReadMethod::Get, &target, Some(query), HeaderMap::new())
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(GatewayError::NoSuchBucket);
        }
        if !status.is_success() {
            return Err(GatewayError::BackendUnavailable(format!(
                "{what} on {bucket} answered {status}"
            )));
        }
        lock_xml::read_capped(Body::from(resp.into_body()), list_xml::LIST_PAGE_CAP)
            .await
            .map_err(|e| GatewayError::BackendUnavailable(format!("{what}: {e}")))
    }

    /// ListMultipartUploads of a versioned bucket: the backend's uploads under the versions
    /// folder, named by the client's key and upload id (`upload_id_for`), paginated by the
    /// client's markers. A delimiter is not served yet (501).
    pub(crate) async fn list_uploads(
        &self,
        call: &Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let qs = &call.query;
        if qs.get("delimiter").is_some_and(|d| !d.is_empty()) {
            return Err(GatewayError::NotImplemented(
                "ListMultipartUploads with a delimiter is not served on a versioned bucket yet"
                    .into(),
            ));
        }
        let encoding = Encoding::of(qs.get("encoding-type"))?;
        let prefix = qs.get("prefix").unwrap_or_default().to_owned();
        let max = replies::max_keys(qs.get("max-uploads"))?;
        let key_marker = qs.get("key-marker").filter(|k| !k.is_empty());
        let id_marker = qs.get("upload-id-marker").filter(|u| !u.is_empty());
        let backend = &self.backend;
        let mut query = format!("uploads={}", q("prefix", &layout::versions_prefix(&prefix)));
        query.push_str(&q("max-uploads", &max.to_string()));
        match (key_marker, id_marker) {
            (None, _) => {}
            // Uploads of keys after the marker.
            (Some(k), None) => query.push_str(&q("key-marker", &layout::after_versions_of(k))),
            // Uploads of the marker's key after that upload, then of later keys.
            (Some(k), Some(u)) => {
                let (id, backend_id) = split_upload_id(backend, &bucket, k, u)
                    .map_err(|_| GatewayError::InvalidArgument("Invalid uploadId marker".into()))?;
                query.push_str(&q("key-marker", &layout::version_name(k, &id)));
                query.push_str(&q("upload-id-marker", backend_id));
            }
        }
        let body = self
            .bucket_listing(&bucket, &query, "ListMultipartUploads")
            .await?;
        let page = list_xml::parse_uploads_page(&body)?;
        let mut uploads = String::new();
        let mut last = None;
        for u in &page.uploads {
            // Every upload the gateway began in this bucket is aimed at a version's name.
            let Some((key, id)) = layout::parse_version_name(&u.key) else {
                return Err(GatewayError::BackendUnavailable(format!(
                    "an upload under an unknown name in {bucket}"
                )));
            };
            let client_id = upload_id_for(backend, &bucket, &key, &id, &u.upload_id);
            let party = |(i, n): &(String, String)| {
                format!(
                    "<ID>{}</ID><DisplayName>{}</DisplayName>",
                    escape(i),
                    escape(n)
                )
            };
            uploads.push_str(&format!(
                "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiator>{}</Initiator><Owner>{}</Owner>{}<Initiated>{}</Initiated></Upload>",
                encoding.name(&key),
                escape(&client_id),
                party(&u.initiator),
                party(&u.owner),
                list_xml::element("StorageClass", u.storage_class.as_deref().map(escape).as_deref()),
                escape(&u.initiated),
            ));
            last = Some((key, client_id));
        }
        let next = match (&last, page.truncated) {
            (Some((k, u)), true) => format!(
                "<NextKeyMarker>{}</NextKeyMarker><NextUploadIdMarker>{}</NextUploadIdMarker>",
                encoding.name(k),
                escape(u)
            ),
            _ => String::new(),
        };
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><KeyMarker>{}</KeyMarker><UploadIdMarker>{}</UploadIdMarker>{next}<Prefix>{}</Prefix>{}<MaxUploads>{max}</MaxUploads><IsTruncated>{}</IsTruncated>{uploads}</ListMultipartUploadsResult>",
            escape(&bucket),
            encoding.name(key_marker.unwrap_or_default()),
            escape(id_marker.unwrap_or_default()),
            encoding.name(&prefix),
            encoding.element(),
            page.truncated && last.is_some(),
        );
        Ok(reply_with(StatusCode::OK, Some(xml)))
    }
}

/// A reply the gateway makes for a delete marker: `x-amz-delete-marker` and its version id.
fn marker_reply(status: StatusCode, code: &str, message: &str, id: &str) -> S3Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
        escape(message)
    );
    let mut out = reply_with(status, Some(xml));
    out.headers
        .insert("x-amz-delete-marker", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(id) {
        out.headers.insert("x-amz-version-id", v);
    }
    out
}

fn set_version_header(headers: &mut HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-amz-version-id", v);
    }
}

impl Gateway {
    pub(crate) fn lister<'a>(&'a self, bucket: &'a str) -> BackendLister<'a> {
        BackendLister {
            gateway: self,
            bucket,
        }
    }

    /// Where a version lives on the backend: its own name for a version the gateway made in
    /// a bucket that is not native; else the key, with `versionId` for a native backend.
    pub(crate) fn address(&self, object: &ObjectRef) -> (Target, Option<String>) {
        let made = object
            .version_id
            .as_deref()
            .and_then(VersionId::parse)
            .filter(|_| self.locks.profile_of(&object.bucket) != Profile::Native);
        let key = match &made {
            Some(id) => layout::version_name(&object.key, id),
            None => object.key.clone(),
        };
        let query = match (&made, &object.version_id) {
            (None, Some(v)) => Some(format!("versionId={}", encode_query_value(v))),
            _ => None,
        };
        (
            Target {
                bucket: Some(object.bucket.clone()),
                key: Some(key),
            },
            query,
        )
    }

    /// The latest version of `key`, from the backend's listing of its versions (newest
    /// first); `None` when the gateway made none (the key's `null` version, if any, is its
    /// latest).
    pub(crate) async fn latest(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<VersionId>, GatewayError> {
        let page = self
            .lister(bucket)
            .list(&first_of(&layout::versions_of(key)))
            .await?;
        Ok(page.items.iter().find_map(|item| match item {
            listing::BackendItem::Object(o) => {
                layout::parse_version_name(&o.name).and_then(|(k, id)| (k == key).then_some(id))
            }
            listing::BackendItem::Prefix(_) => None,
        }))
    }

    /// The latest version of a key for a read: the index's word (this gateway's own writes, or
    /// an earlier read's listing), else the store's listing, remembered. Only reads use it;
    /// a lock change without a version id asks the store (`which`).
    /// Whether the answer was remembered (rather than just listed) comes with it.
    pub(crate) async fn latest_for_read(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Which, bool), GatewayError> {
        // A remembered object version is checked by its own GET (gone: listed again); a
        // remembered delete marker would answer 404 with nothing to check it, so it is listed.
        if let Some(known) = self.locks.index.latest(bucket, key)?
            && let Some(id) = VersionId::parse(&known)
            && id.kind() == Kind::Object
        {
            return Ok((Which::Made(id), true));
        }
        let which = self.which(bucket, key, None).await?;
        // Only an object version is remembered: a marker would stand in the way of the
        // object version a later listing finds.
        if let Which::Made(id) = &which
            && id.kind() == Kind::Object
        {
            self.locks.index.fill_latest(bucket, key, id.as_str())?;
        }
        Ok((which, false))
    }

    /// A version (or delete marker) just written to a key, under its lock: the latest, unless
    /// a newer one is known (a multipart upload's version is dated when it began).
    pub(crate) fn note_written(
        &self,
        bucket: &str,
        key: &str,
        id: &VersionId,
    ) -> Result<(), GatewayError> {
        let known = self.locks.index.latest(bucket, key)?;
        // Ids sort newest first.
        if known.is_none_or(|k| id.as_str() < k.as_str()) {
            self.locks.index.set_latest(bucket, key, id.as_str())?;
        }
        Ok(())
    }

    /// The version a request on a versioned bucket means.
    pub(crate) async fn which(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Which, GatewayError> {
        match version_id {
            Some(v) => parse_version(v),
            None => Ok(self
                .latest(bucket, key)
                .await?
                .map_or(Which::Null, Which::Made)),
        }
    }

    /// A conditional write on a versioned bucket (`If-None-Match: *`, `If-Match: <ETag>`),
    /// checked against the key's current version: the store would check it against the new
    /// version's own name, where it always holds (or never). Called under this gateway's lock
    /// of the key, so two writes through it cannot both pass `If-None-Match: *`; through two
    /// gateways at once they can (docs/DEPLOY.md).
    ///
    /// # Errors
    /// 412 PreconditionFailed; 404 NoSuchKey for `If-Match` without a current version; 501
    /// for an `If-None-Match` other than `*`, as S3 answers.
    pub(crate) async fn check_write_conditions(
        &self,
        bucket: &str,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<(), GatewayError> {
        let none_match = headers.get(http::header::IF_NONE_MATCH);
        let if_match: Vec<String> = headers
            .get_all(http::header::IF_MATCH)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        if none_match.is_none() && if_match.is_empty() {
            return Ok(());
        }
        if none_match.is_some_and(|v| v.as_bytes().trim_ascii() != b"*") {
            return Err(GatewayError::NotImplemented(
                "A header you provided implies functionality that is not implemented".into(),
            ));
        }
        let current = self.current_etag(bucket, key).await?;
        if none_match.is_some() && current.is_some() {
            return Err(GatewayError::PreconditionFailed);
        }
        if !if_match.is_empty() {
            let Some(etag) = current else {
                return Err(GatewayError::NoSuchKey);
            };
            // Compared strongly (a weak tag never matches); an ETag the store did not give
            // matches nothing but `*`.
            let etag = etag.trim_matches('"');
            let holds = if_match
                .iter()
                .any(|t| t == "*" || (!etag.is_empty() && t.trim_matches('"') == etag));
            if !holds {
                return Err(GatewayError::PreconditionFailed);
            }
        }
        Ok(())
    }

    /// The ETag of the key's current version; `None` when it has none (no version, or a
    /// delete marker).
    async fn current_etag(&self, bucket: &str, key: &str) -> Result<Option<String>, GatewayError> {
        let listed = self.which(bucket, key, None).await?;
        // A version this gateway wrote that the store's listing does not show yet is newer
        // still (ids sort newest first); gone since, the listing's stands.
        let remembered = self
            .locks
            .index
            .latest(bucket, key)?
            .and_then(|v| VersionId::parse(&v))
            .filter(|known| match &listed {
                Which::Made(l) => known.as_str() < l.as_str(),
                Which::Null => true,
            });
        if let Some(known) = remembered {
            let which = Which::Made(known);
            if let Some(etag) = self.etag_of(&which.object(bucket, key)).await? {
                // A delete marker that is there: the key has no current version.
                return Ok((!which.is_delete_marker()).then_some(etag));
            }
        }
        if listed.is_delete_marker() {
            return Ok(None);
        }
        self.etag_of(&listed.object(bucket, key)).await
    }

    /// A version's ETag, from its HEAD; `None` when it is gone.
    async fn etag_of(&self, object: &ObjectRef) -> Result<Option<String>, GatewayError> {
        let key = &object.key;
        let head = self.head_version(object).await?;
        match head.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                head.headers()
                    .get(http::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            )),
            s => Err(GatewayError::BackendUnavailable(format!(
                "HEAD of the current version of {key} answered {s}"
            ))),
        }
    }

    /// GetObject and HeadObject of a versioned bucket.
    pub(crate) async fn read_version(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let named = call.version_id.clone();
        let (which, remembered) = match named.as_deref() {
            Some(v) => (parse_version(v)?, false),
            None => self.latest_for_read(&bucket, &key).await?,
        };
        if which.is_delete_marker() {
            return Ok(if named.is_some() {
                marker_reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                    which.id(),
                )
            } else {
                marker_reply(
                    StatusCode::NOT_FOUND,
                    "NoSuchKey",
                    "The specified key does not exist.",
                    which.id(),
                )
            });
        }
        let object = which.object(&bucket, &key);
        let (target, _) = self.address(&object);
        call.query.remove("versionId");
        let query = call.query.to_backend_string();
        let method = ReadMethod::of(&call.method).ok_or_else(|| {
            GatewayError::UnknownOperation(format!("{} {}", call.method, call.op.name()))
        })?;
        let headers = backend_headers(&call.headers);
        let resp = self
            .read(method, &target, query.as_deref(), headers)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND && named.is_some() {
            return Err(GatewayError::NoSuchVersion);
        }
        if resp.status() == StatusCode::NOT_FOUND
            && remembered
            && let Which::Made(id) = &which
        {
            // The remembered latest is gone (deleted through another gateway): the store's
            // listing says which is the latest now.
            self.locks.index.forget_latest(&bucket, &key, id.as_str())?;
            call.version_id = None;
            return Box::pin(self.read_version(call)).await;
        }
        let mut out = reply(resp);
        if out.status.is_some_and(|s| s.is_success()) {
            self.show_lock(&mut out, &object)?;
            set_version_header(&mut out.headers, which.id());
        }
        Ok(out)
    }

    /// A delete without a version id: a new delete marker, on the permit of the decision.
    pub(crate) async fn put_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        permit: Permit,
    ) -> Result<Result<VersionId, S3Response<Body>>, GatewayError> {
        let id = VersionId::new(self.locks.now(), Kind::DeleteMarker);
        let target = Target {
            bucket: Some(bucket.to_owned()),
            key: Some(layout::version_name(key, &id)),
        };
        let resp = self.send_empty(Method::PUT, &target, None, permit).await?;
        if resp.status().is_success() {
            self.note_written(bucket, key, &id)?;
            Ok(Ok(id))
        } else {
            Ok(Err(reply(resp)))
        }
    }

    /// The reply to a delete of a versioned bucket's key: 204, with the version it removed
    /// or the delete marker it made.
    pub(crate) fn deleted_reply(id: &str, marker: bool) -> S3Response<Body> {
        let mut out = reply_with(StatusCode::NO_CONTENT, None);
        set_version_header(&mut out.headers, id);
        if marker {
            out.headers
                .insert("x-amz-delete-marker", HeaderValue::from_static("true"));
        }
        out
    }

    /// ListObjects, ListObjectsV2 and ListObjectVersions of a versioned bucket.
    pub(crate) async fn list_versioned(
        &self,
        call: &Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let q = &call.query;
        let common = replies::Common {
            bucket: bucket.clone(),
            prefix: q.get("prefix").unwrap_or_default().to_owned(),
            delimiter: q
                .get("delimiter")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            max_keys: replies::max_keys(q.get("max-keys"))?,
            encoding: Encoding::of(q.get("encoding-type"))?,
        };
        let request = ListRequest {
            prefix: common.prefix.clone(),
            delimiter: common.delimiter.clone(),
            max_keys: common.max_keys,
            backend_page: BACKEND_PAGE,
        };
        let lister = self.lister(&bucket);
        let xml = match call.op {
            S3Op::ListObjectVersions => {
                let key_marker = q.get("key-marker");
                let version_marker = q.get("version-id-marker");
                let after = replies::versions_after(key_marker, version_marker)?;
                let page = listing::list_versions(&lister, &request, &after).await?;
                replies::list_versions(&common, &page, key_marker, version_marker)
            }
            S3Op::ListObjectsV2 => {
                let token = q.get("continuation-token");
                let start_after = q.get("start-after");
                let (after, plain_done) = match token {
                    Some(t) => {
                        let (name, plain_done) = replies::name_of_token(t)?;
                        (Some(name), plain_done)
                    }
                    None => (
                        start_after.filter(|s| !s.is_empty()).map(str::to_owned),
                        false,
                    ),
                };
                let page =
                    listing::list_current(&lister, &request, after.as_deref(), plain_done).await?;
                replies::list_v2(&common, &page, token, start_after)
            }
            _ => {
                let marker = q.get("marker");
                let after = marker.filter(|m| !m.is_empty());
                let page = listing::list_current(&lister, &request, after, false).await?;
                replies::list_v1(&common, &page, marker)
            }
        };
        Ok(reply_with(StatusCode::OK, Some(xml)))
    }

    /// GetBucketVersioning of a versioned bucket.
    pub(crate) fn versioning_enabled_reply() -> S3Response<Body> {
        reply_with(
            StatusCode::OK,
            Some(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>"
                    .into(),
            ),
        )
    }

    /// Points an object request of a versioned bucket at its version's backend name (the
    /// version it names, or the latest), without `versionId`. A delete marker has no object.
    pub(crate) async fn aim_at_version(&self, call: &mut Call<'_>) -> Result<Which, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let named = call.version_id.clone();
        let which = self.which(&bucket, &key, named.as_deref()).await?;
        not_a_marker(&which, named.is_some())?;
        let (target, _) = self.address(&which.object(&bucket, &key));
        call.target = target;
        call.query.remove("versionId");
        Ok(which)
    }

    /// Points a multipart request of a versioned bucket (part, copy of a part, list of parts,
    /// abort, completion) at its version's backend name and the backend's upload id.
    pub(crate) fn aim_at_upload(&self, call: &mut Call<'_>) -> Result<VersionId, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let client_id = call.upload_id.clone().ok_or(GatewayError::NoSuchUpload)?;
        let (id, backend_id) = split_upload_id(&self.backend, &bucket, &key, &client_id)?;
        call.query.set("uploadId", backend_id);
        call.target.key = Some(layout::version_name(&key, &id));
        Ok(id)
    }

    /// `x-amz-copy-source` pointed at the source version's backend name, when the source
    /// bucket is versioned by the gateway.
    pub(crate) async fn aim_copy_source(
        &self,
        headers: &mut HeaderMap,
    ) -> Result<Option<Which>, GatewayError> {
        const NAME: &str = "x-amz-copy-source";
        let Some(raw) = headers.get(NAME) else {
            return Ok(None);
        };
        let source = CopySource::parse(raw)?;
        let facts = self.bucket_facts(&source.bucket).await?;
        if !serves_versions(&facts) {
            return Ok(None);
        }
        let which = self
            .which(&source.bucket, &source.key, source.version_id.as_deref())
            .await?;
        if which.is_delete_marker() {
            return Err(if source.version_id.is_some() {
                GatewayError::InvalidRequest(
                    "The source of a copy request may not specifically refer to a delete marker by version id."
                        .into(),
                )
            } else {
                GatewayError::NoSuchKey
            });
        }
        let (target, _) = self.address(&which.object(&source.bucket, &source.key));
        let aimed = CopySource {
            bucket: source.bucket,
            key: target.key.unwrap_or_default(),
            version_id: None,
        };
        let value = HeaderValue::from_str(&aimed.header_value())
            .map_err(|_| GatewayError::Internal("copy source header".into()))?;
        headers.insert(NAME, value);
        Ok(Some(which))
    }

    /// The lock of a version shown as S3's lock headers: the index's record, which holds the
    /// version's upload-time lock with every change this gateway made or read from its journal
    /// applied; else its metadata (the upload-time lock). A GET reads no journal: a change made
    /// through another gateway shows once this one has read it (any lock decision does).
    pub(crate) fn show_lock(
        &self,
        out: &mut S3Response<Body>,
        object: &ObjectRef,
    ) -> Result<(), GatewayError> {
        let record = self.locks.index.get(object)?;
        let hold_set = out.headers.contains_key(lock_headers::META_LEGAL_HOLD)
            || record
                .as_ref()
                .is_some_and(|r| r.source == LockSource::PutObjectLegalHold);
        let lock = match record {
            Some(r) => Some(r.lock),
            None => lock_headers::from_backend(&out.headers),
        };
        if let Some(lock) = lock.filter(|l| !l.is_empty() || hold_set) {
            lock_headers::set_response_headers(&mut out.headers, &lock);
        }
        Ok(())
    }
}

/// The client's key and upload id in a backend's multipart reply (CreateMultipartUpload,
/// CompleteMultipartUpload, ListParts), in place of the version's backend name and the
/// backend's upload id (`ids`: the backend's upload id and the client's).
pub(crate) fn client_names_in(
    xml: &[u8],
    key: &str,
    id: &VersionId,
    ids: Option<(&str, &str)>,
) -> String {
    let text = String::from_utf8_lossy(xml);
    let backend_key = escape(&layout::version_name(key, id));
    let mut out = text.replace(
        &format!("<Key>{backend_key}</Key>"),
        &format!("<Key>{}</Key>", escape(key)),
    );
    // A Location names the backend's path: the client's key stands there instead.
    let encoded_name = encode_query_value(&layout::version_name(key, id)).replace("%2F", "/");
    out = out.replace(&encoded_name, &encode_query_value(key).replace("%2F", "/"));
    if let Some((backend, client)) = ids {
        out = out.replace(
            &format!("<UploadId>{}</UploadId>", escape(backend)),
            &format!("<UploadId>{}</UploadId>", escape(client)),
        );
    }
    out
}

/// A backend's multipart reply with the client's key and upload id in it (see
/// `client_names_in`); an error passes as it is.
pub(crate) async fn with_client_names(
    resp: http::Response<hyper::body::Incoming>,
    key: &str,
    id: &VersionId,
    ids: Option<(&str, &str)>,
) -> Result<S3Response<Body>, GatewayError> {
    if !resp.status().is_success() {
        return Ok(reply(resp));
    }
    let (parts, incoming) = resp.into_parts();
    let body = lock_xml::read_capped(Body::from(incoming), list_xml::LIST_PAGE_CAP)
        .await
        .map_err(|e| GatewayError::BackendUnavailable(format!("multipart reply: {e}")))?;
    let xml = client_names_in(&body, key, id, ids);
    let mut out = reply_with(parts.status, Some(xml));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection" | "content-type"
        ) {
            out.headers.insert(name.clone(), value.clone());
        }
    }
    Ok(out)
}

/// What the store records of a `gateway` or `bucket-retention` bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoredBucket {
    /// Its object lock configuration: the newest record, else enabled without a default if
    /// the bucket holds versions the gateway wrote and no record says a client enabled
    /// versioning alone (then only a lock bucket has versions); `None` when nothing says.
    pub lock: Option<policy::lock::BucketLock>,
    /// A record says a client enabled versioning on the bucket.
    pub versioned: bool,
}

impl Gateway {
    /// Records the bucket's object lock configuration on the backend, as a new record (never
    /// a rewrite): what any gateway, or this one after losing its index, reads back.
    pub(crate) async fn record_bucket_lock(
        &self,
        bucket: &str,
        lock: &policy::lock::BucketLock,
        permit: Permit,
    ) -> Result<(), GatewayError> {
        let xml = bytes::Bytes::from(lock_xml::render_lock_configuration(lock));
        // Later than the newest record, whatever this gateway's clock says: the newest record
        // is the configuration.
        let newest = self
            .first_name(bucket, layout::bucket_lock_records())
            .await?
            .and_then(|name| VersionId::parse(name.strip_prefix(layout::bucket_lock_records())?));
        let id = VersionId::new_after(self.locks.now(), newest.as_ref(), Kind::Object);
        self.put_record(bucket, layout::bucket_lock_record(&id), xml, permit)
            .await
    }

    /// Records on the backend that a client enabled versioning on the bucket (one new, empty
    /// record): every gateway serves its versions from then on.
    pub(crate) async fn record_versioning(
        &self,
        bucket: &str,
        permit: Permit,
    ) -> Result<(), GatewayError> {
        let id = VersionId::new_after(self.locks.now(), None, Kind::Object);
        let name = layout::bucket_versioning_record(&id);
        self.put_record(bucket, name, bytes::Bytes::new(), permit)
            .await
    }

    /// Writes one record of the bucket's settings under a name never written before.
    async fn put_record(
        &self,
        bucket: &str,
        name: String,
        body: bytes::Bytes,
        permit: Permit,
    ) -> Result<(), GatewayError> {
        let target = Target {
            bucket: Some(bucket.to_owned()),
            key: Some(name),
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert("content-md5", crate::enforce::gateway::content_md5(&body));
        let resp = self
            .send(
                Method::PUT,
                &target,
                None,
                headers,
                crate::enforce::bytes_body(body),
                Payload::Unsigned,
                permit,
            )
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(GatewayError::BackendUnavailable(format!(
                "recording the settings of {bucket} answered {}",
                resp.status()
            )))
        }
    }

    /// The backend name of the first (for records: the newest) name under `prefix`, if any.
    async fn first_name(&self, bucket: &str, prefix: &str) -> Result<Option<String>, GatewayError> {
        let page = self.lister(bucket).list(&first_of(prefix)).await?;
        Ok(page.items.into_iter().find_map(|item| match item {
            listing::BackendItem::Object(o) => Some(o.name),
            listing::BackendItem::Prefix(_) => None,
        }))
    }

    /// What the backend records of the bucket's lock configuration and versioning (see
    /// `StoredBucket`); nothing for a bucket the backend does not have.
    pub(crate) async fn bucket_on_backend(
        &self,
        bucket: &str,
    ) -> Result<StoredBucket, GatewayError> {
        let read = tokio::try_join!(
            self.first_name(bucket, layout::bucket_lock_records()),
            self.first_name(bucket, layout::bucket_versioning_records()),
        );
        let (newest, versioning) = match read {
            Err(GatewayError::NoSuchBucket) => return Ok(StoredBucket::default()),
            r => r?,
        };
        let versioned = versioning.is_some();
        if let Some(name) = newest {
            let target = Target {
                bucket: Some(bucket.to_owned()),
                key: Some(name),
            };
            let resp = self
                .read(ReadMethod::Get, &target, None, HeaderMap::new())
                .await?;
            if !resp.status().is_success() {
                return Err(GatewayError::BackendUnavailable(format!(
                    "reading the lock configuration of {bucket} answered {}",
                    resp.status()
                )));
            }
            let body =
                lock_xml::read_capped(Body::from(resp.into_body()), lock_xml::POLICY_BODY_CAP)
                    .await?;
            let lock = lock_xml::parse_lock_configuration(&body).map_err(|e| {
                GatewayError::BackendUnavailable(format!(
                    "the lock configuration recorded for {bucket} is unreadable: {e}"
                ))
            })?;
            return Ok(StoredBucket {
                lock: Some(lock),
                versioned,
            });
        }
        if versioned {
            return Ok(StoredBucket {
                lock: None,
                versioned,
            });
        }
        let versions = self
            .lister(bucket)
            .list(&first_of(&layout::versions_prefix("")))
            .await?;
        Ok(StoredBucket {
            lock: (!versions.items.is_empty()).then_some(policy::lock::BucketLock {
                enabled: true,
                default_retention: None,
            }),
            versioned,
        })
    }
}
