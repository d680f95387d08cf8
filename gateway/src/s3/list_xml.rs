//! Listings as XML: a backend's ListObjectsV2 page read back, and the listings the gateway
//! answers for versioned buckets (ListObjectsV2, ListObjects, ListObjectVersions), with S3's
//! `encoding-type=url`.

use s3s::xml::{DeError, DeResult, Deserializer};

use crate::error::GatewayError;
use crate::s3::lock_xml::escape;

/// The largest backend listing page read: 1000 entries of up to 1024-byte names, with room.
pub const LIST_PAGE_CAP: usize = 8 * 1024 * 1024;

/// An object in a backend listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendObject {
    pub name: String,
    pub size: u64,
    /// As the backend wrote it, quotes included.
    pub etag: String,
    /// As the backend wrote it (ISO 8601).
    pub last_modified: String,
    pub storage_class: Option<String>,
}

/// An entry of a backend listing page: an object, or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendItem {
    Object(BackendObject),
    Prefix(String),
}

impl BackendItem {
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Object(o) => &o.name,
            Self::Prefix(p) => p,
        }
    }
}

/// A backend's ListObjectsV2 answer: objects and common prefixes merged in name order.
#[derive(Debug, Clone, Default)]
pub struct BackendPage {
    pub items: Vec<BackendItem>,
    pub next_continuation: Option<String>,
}

/// Consumes an element's content, whatever it holds.
fn skip(d: &mut Deserializer<'_>) -> DeResult {
    d.for_each_element(|d, _| skip(d))
}

fn text(d: &mut Deserializer<'_>) -> DeResult<String> {
    d.text(|t| Ok(t.to_owned()))
}

fn object(d: &mut Deserializer<'_>) -> DeResult<BackendObject> {
    let mut o = BackendObject {
        name: String::new(),
        size: 0,
        etag: String::new(),
        last_modified: String::new(),
        storage_class: None,
    };
    let mut has_key = false;
    d.for_each_element(|d, name| {
        match name {
            b"Key" => {
                o.name = text(d)?;
                has_key = true;
            }
            b"Size" => {
                o.size = text(d)?
                    .trim()
                    .parse()
                    .map_err(|_| DeError::InvalidContent)?
            }
            b"ETag" => o.etag = text(d)?,
            b"LastModified" => o.last_modified = text(d)?,
            b"StorageClass" => o.storage_class = Some(text(d)?),
            _ => skip(d)?,
        }
        Ok(())
    })?;
    if has_key {
        Ok(o)
    } else {
        Err(DeError::MissingField)
    }
}

/// Reads a backend's ListObjectsV2 reply. Elements S3 does not define (a store's extensions)
/// are passed over.
///
/// # Errors
/// The reply is not a ListBucketResult, or it says it is truncated without a token.
pub fn parse_backend_page(xml: &[u8]) -> Result<BackendPage, GatewayError> {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    let mut truncated = false;
    let mut next = None;
    let mut d = Deserializer::new(xml);
    let parsed = d.named_element("ListBucketResult", |d| {
        d.for_each_element(|d, name| {
            match name {
                b"Contents" => objects.push(object(d)?),
                b"CommonPrefixes" => d.for_each_element(|d, name| {
                    if name == b"Prefix" {
                        prefixes.push(text(d)?);
                        Ok(())
                    } else {
                        skip(d)
                    }
                })?,
                b"IsTruncated" => truncated = text(d)?.trim() == "true",
                b"NextContinuationToken" => next = Some(text(d)?),
                _ => skip(d)?,
            }
            Ok(())
        })
    });
    parsed
        .and_then(|()| d.expect_eof())
        .map_err(|e| GatewayError::BackendUnavailable(format!("unreadable listing: {e:?}")))?;
    if truncated && next.as_deref().is_none_or(str::is_empty) {
        return Err(GatewayError::BackendUnavailable(
            "a truncated listing without a continuation token".into(),
        ));
    }
    let mut items: Vec<BackendItem> = objects
        .into_iter()
        .map(BackendItem::Object)
        .chain(prefixes.into_iter().map(BackendItem::Prefix))
        .collect();
    items.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(BackendPage {
        items,
        next_continuation: if truncated { next } else { None },
    })
}

/// A multipart upload in a backend's ListMultipartUploads reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
    pub storage_class: Option<String>,
    /// The `ID` and `DisplayName` of the initiator and of the owner, as the backend wrote them.
    pub initiator: (String, String),
    pub owner: (String, String),
}

/// A backend's ListMultipartUploads reply, as far as the gateway reads it.
#[derive(Debug, Clone, Default)]
pub struct UploadsPage {
    pub uploads: Vec<BackendUpload>,
    pub truncated: bool,
}

fn party(d: &mut Deserializer<'_>) -> DeResult<(String, String)> {
    let mut out = (String::new(), String::new());
    d.for_each_element(|d, name| {
        match name {
            b"ID" => out.0 = text(d)?,
            b"DisplayName" => out.1 = text(d)?,
            _ => skip(d)?,
        }
        Ok(())
    })?;
    Ok(out)
}

/// Reads a backend's ListMultipartUploads reply (its uploads and whether it is truncated).
///
/// # Errors
/// The reply is not a ListMultipartUploadsResult.
pub fn parse_uploads_page(xml: &[u8]) -> Result<UploadsPage, GatewayError> {
    let mut page = UploadsPage::default();
    let mut d = Deserializer::new(xml);
    let parsed = d.named_element("ListMultipartUploadsResult", |d| {
        d.for_each_element(|d, name| {
            match name {
                b"Upload" => {
                    let mut u = BackendUpload::default();
                    d.for_each_element(|d, name| {
                        match name {
                            b"Key" => u.key = text(d)?,
                            b"UploadId" => u.upload_id = text(d)?,
                            b"Initiated" => u.initiated = text(d)?,
                            b"StorageClass" => u.storage_class = Some(text(d)?),
                            b"Initiator" => u.initiator = party(d)?,
                            b"Owner" => u.owner = party(d)?,
                            _ => skip(d)?,
                        }
                        Ok(())
                    })?;
                    page.uploads.push(u);
                }
                b"IsTruncated" => page.truncated = text(d)?.trim() == "true",
                _ => skip(d)?,
            }
            Ok(())
        })
    });
    parsed
        .and_then(|()| d.expect_eof())
        .map_err(|e| GatewayError::BackendUnavailable(format!("unreadable uploads: {e:?}")))?;
    Ok(page)
}

/// How names are written in a listing reply: as they are, or percent-encoded
/// (`encoding-type=url`, which SDKs ask for to carry any character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Url,
}

impl Encoding {
    /// From the request's `encoding-type`.
    ///
    /// # Errors
    /// Any value but `url`.
    pub fn of(value: Option<&str>) -> Result<Self, GatewayError> {
        match value {
            None => Ok(Self::Plain),
            Some(v) if v.eq_ignore_ascii_case("url") => Ok(Self::Url),
            Some(_) => Err(GatewayError::InvalidArgument(
                "Invalid Encoding Method specified in Request".into(),
            )),
        }
    }

    /// A name as an element's escaped text.
    #[must_use]
    pub fn name(self, s: &str) -> String {
        match self {
            Self::Plain => escape(s),
            Self::Url => {
                const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                    .remove(b'-')
                    .remove(b'_')
                    .remove(b'.')
                    .remove(b'~')
                    .remove(b'/');
                escape(&percent_encoding::utf8_percent_encode(s, KEEP).to_string())
            }
        }
    }

    /// `<EncodingType>` when asked for.
    #[must_use]
    pub fn element(self) -> &'static str {
        match self {
            Self::Plain => "",
            Self::Url => "<EncodingType>url</EncodingType>",
        }
    }
}

/// `<Name>text</Name>`, or nothing for `None`.
#[must_use]
pub fn element(name: &str, text: Option<&str>) -> String {
    text.map_or_else(String::new, |t| format!("<{name}>{t}</{name}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_pages_are_read_in_name_order_and_extensions_passed_over() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>
<KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>
<NextContinuationToken>t1</NextContinuationToken>
<Contents><Key>a &amp; b</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>5</Size><Owner><ID>x</ID></Owner><StorageClass>STANDARD</StorageClass><UserMetadata><k>v</k></UserMetadata></Contents>
<Contents><Key>c</Key><Size>0</Size></Contents>
<CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page = parse_backend_page(xml).expect("a page");
        let names: Vec<&str> = page.items.iter().map(BackendItem::name).collect();
        assert_eq!(names, ["a & b", "b/", "c"]);
        assert_eq!(page.next_continuation.as_deref(), Some("t1"));
        let BackendItem::Object(o) = &page.items[0] else {
            panic!("an object")
        };
        assert_eq!((o.size, o.etag.as_str()), (5, "\"e\""));
        assert!(parse_backend_page(b"<Error><Code>NoSuchBucket</Code></Error>").is_err());
        let no_token = b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(parse_backend_page(no_token).is_err());
    }

    #[test]
    fn url_encoding_keeps_what_s3_keeps() {
        assert_eq!(Encoding::Url.name("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
        assert_eq!(Encoding::Plain.name("a<b"), "a&lt;b");
        assert!(Encoding::of(Some("base64")).is_err());
    }
}
