//! The listing replies of a versioned bucket, rendered as S3 renders them: ListObjectsV2,
//! ListObjects and ListObjectVersions, with their markers and tokens.

use base64::Engine as _;

use crate::error::GatewayError;
use crate::s3::list_xml::{Encoding, element};
use crate::s3::lock_xml::escape;
use crate::versions::layout::VersionId;
use crate::versions::listing::{Current, ListPage, Listed, Version, VersionsAfter};

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
const XMLNS: &str = r#" xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;
/// The most entries a page holds, whatever the client asks.
pub const MAX_KEYS: u32 = 1000;

/// The parameters of a listing request that every kind shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: u32,
    pub encoding: Encoding,
}

/// `max-keys` as S3 reads it: a number from 0, at most [`MAX_KEYS`].
///
/// # Errors
/// Not a non-negative number.
pub fn max_keys(value: Option<&str>) -> Result<u32, GatewayError> {
    match value {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| u32::try_from(n.min(i64::from(MAX_KEYS))).unwrap_or(MAX_KEYS))
            .ok_or_else(|| {
                GatewayError::InvalidArgument(
                    "Provided max-keys not an integer or within integer range".into(),
                )
            }),
    }
}

/// A ListObjectsV2 continuation token, opaque: the name the page after it starts after, and
/// (a `.n` after it) whether no plain name was left after that name (`ListPage::plain_done`).
#[must_use]
pub fn token_for(name: &str, plain_done: bool) -> String {
    let mut token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name);
    if plain_done {
        token.push_str(PLAIN_DONE);
    }
    token
}

/// What a token says after its name: no plain name follows (URL-safe base64 has no `.`).
const PLAIN_DONE: &str = ".n";

/// The name a continuation token stands for, and whether no plain name followed it.
///
/// # Errors
/// A token the gateway did not give.
pub fn name_of_token(token: &str) -> Result<(String, bool), GatewayError> {
    let (encoded, plain_done) = match token.strip_suffix(PLAIN_DONE) {
        Some(encoded) => (encoded, true),
        None => (token, false),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|name| (name, plain_done))
        .ok_or_else(|| {
            GatewayError::InvalidArgument("The continuation token provided is incorrect".into())
        })
}

fn common_elements(c: &Common) -> String {
    let mut out = format!(
        "<Name>{}</Name><Prefix>{}</Prefix>",
        escape(&c.bucket),
        c.encoding.name(&c.prefix)
    );
    out.push_str(&element(
        "Delimiter",
        c.delimiter
            .as_deref()
            .map(|d| c.encoding.name(d))
            .as_deref(),
    ));
    out.push_str(&format!("<MaxKeys>{}</MaxKeys>", c.max_keys));
    out.push_str(c.encoding.element());
    out
}

fn contents(c: &Common, items: &[Listed<Current>]) -> String {
    let mut out = String::new();
    for item in items {
        match item {
            Listed::Entry(e) => {
                out.push_str(&format!(
                    "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>{}</StorageClass></Contents>",
                    c.encoding.name(&e.key),
                    escape(&e.object.last_modified),
                    escape(&e.object.etag),
                    e.object.size,
                    escape(e.object.storage_class.as_deref().unwrap_or("STANDARD")),
                ));
            }
            Listed::Prefix(_) => {}
        }
    }
    out.push_str(&prefixes(c, items));
    out
}

fn prefixes<T>(c: &Common, items: &[Listed<T>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Listed::Prefix(p) => Some(format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                c.encoding.name(p)
            )),
            Listed::Entry(_) => None,
        })
        .collect()
}

/// ListObjectsV2's reply.
#[must_use]
pub fn list_v2(
    c: &Common,
    page: &ListPage<Current>,
    continuation: Option<&str>,
    start_after: Option<&str>,
) -> String {
    let next = page
        .truncated
        .then(|| {
            page.items
                .last()
                .map(|i| token_for(i.name(), page.plain_done))
        })
        .flatten();
    format!(
        "{HEAD}<ListBucketResult{XMLNS}>{}<KeyCount>{}</KeyCount><IsTruncated>{}</IsTruncated>{}{}{}{}</ListBucketResult>",
        common_elements(c),
        page.items.len(),
        page.truncated,
        element("ContinuationToken", continuation.map(escape).as_deref()),
        element("NextContinuationToken", next.as_deref()),
        element(
            "StartAfter",
            start_after.map(|s| c.encoding.name(s)).as_deref()
        ),
        contents(c, &page.items),
    )
}

/// ListObjects' (V1) reply.
#[must_use]
pub fn list_v1(c: &Common, page: &ListPage<Current>, marker: Option<&str>) -> String {
    let next = page
        .truncated
        .then(|| page.items.last().map(|i| c.encoding.name(i.name())))
        .flatten();
    format!(
        "{HEAD}<ListBucketResult{XMLNS}>{}<Marker>{}</Marker>{}<IsTruncated>{}</IsTruncated>{}</ListBucketResult>",
        common_elements(c),
        marker.map(|m| c.encoding.name(m)).unwrap_or_default(),
        element("NextMarker", next.as_deref()),
        page.truncated,
        contents(c, &page.items),
    )
}

/// Where a ListObjectVersions request starts, from its `key-marker` and `version-id-marker`.
///
/// # Errors
/// A version id marker without a key marker, or one the gateway never gave.
pub fn versions_after(
    key_marker: Option<&str>,
    version_id_marker: Option<&str>,
) -> Result<VersionsAfter, GatewayError> {
    let key_marker = key_marker.filter(|k| !k.is_empty());
    let version_id_marker = version_id_marker.filter(|v| !v.is_empty());
    match (key_marker, version_id_marker) {
        (None, None) => Ok(VersionsAfter::Start),
        (None, Some(_)) => Err(GatewayError::InvalidArgument(
            "A version-id marker cannot be specified without a key marker.".into(),
        )),
        (Some(k), None | Some("null")) => Ok(VersionsAfter::Key(k.to_owned())),
        (Some(k), Some(v)) => VersionId::parse(v)
            .map(|id| VersionsAfter::Version(k.to_owned(), id))
            .ok_or_else(|| GatewayError::InvalidArgument("Invalid version id specified".into())),
    }
}

/// ListObjectVersions' reply.
#[must_use]
pub fn list_versions(
    c: &Common,
    page: &ListPage<Version>,
    key_marker: Option<&str>,
    version_id_marker: Option<&str>,
) -> String {
    let mut next = String::new();
    if page.truncated
        && let Some(last) = page.items.last()
    {
        match last {
            Listed::Entry(v) => next.push_str(&format!(
                "<NextKeyMarker>{}</NextKeyMarker><NextVersionIdMarker>{}</NextVersionIdMarker>",
                c.encoding.name(&v.key),
                v.version.as_ref().map_or("null", VersionId::as_str),
            )),
            Listed::Prefix(p) => next.push_str(&format!(
                "<NextKeyMarker>{}</NextKeyMarker>",
                c.encoding.name(p)
            )),
        }
    }
    let mut entries = String::new();
    for item in &page.items {
        let Listed::Entry(v) = item else { continue };
        let id = v.version.as_ref().map_or("null", VersionId::as_str);
        let common = format!(
            "<Key>{}</Key><VersionId>{}</VersionId><IsLatest>{}</IsLatest><LastModified>{}</LastModified>",
            c.encoding.name(&v.key),
            id,
            v.is_latest,
            escape(&v.object.last_modified),
        );
        if v.is_delete_marker() {
            entries.push_str(&format!("<DeleteMarker>{common}</DeleteMarker>"));
        } else {
            entries.push_str(&format!(
                "<Version>{common}<ETag>{}</ETag><Size>{}</Size><StorageClass>{}</StorageClass></Version>",
                escape(&v.object.etag),
                v.object.size,
                escape(v.object.storage_class.as_deref().unwrap_or("STANDARD")),
            ));
        }
    }
    format!(
        "{HEAD}<ListVersionsResult{XMLNS}>{}<KeyMarker>{}</KeyMarker><VersionIdMarker>{}</VersionIdMarker>{next}<IsTruncated>{}</IsTruncated>{entries}{}</ListVersionsResult>",
        common_elements(c),
        key_marker.map(|k| c.encoding.name(k)).unwrap_or_default(),
        version_id_marker.map(escape).unwrap_or_default(),
        page.truncated,
        prefixes(c, &page.items),
    )
}
