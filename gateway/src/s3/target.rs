//! What a request addresses: bucket, key and query, decoded once, and re-encoded for the backend
//! in the one canonical form every S3 server verifies signatures against.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::percent_decode_str;

/// Bucket and key of a request, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("the request path is not valid UTF-8 after decoding")]
    NotUtf8,
    #[error("the request path does not start with '/'")]
    NotAbsolute,
    #[error("the request path names an empty bucket")]
    EmptyBucket,
    #[error(
        "bucket names are at most 63 letters, digits, '.', '-' or '_', begin and end with a letter or digit, and have no '..'"
    )]
    BadBucketName,
    #[error(
        "the bucket name 'minio' is reserved: MinIO serves its admin API under it, which the gateway's backend keys must never reach"
    )]
    ReservedBucketName,
    #[error(
        "object keys with '.' or '..' segments are refused: a store could resolve them to another object"
    )]
    DotSegment,
    #[error(
        "object keys with an empty segment (a leading '/' or '//') are refused: a store could resolve them to another object"
    )]
    EmptySegment,
    #[error("object keys are at most 1024 bytes long")]
    KeyTooLong,
    #[error(
        "keys under '.wormgate/' are the gateway's own (versions and their records): no client reads, writes or deletes them"
    )]
    ReservedKey,
}

/// The folder of every bucket that the gateway keeps for itself (see `versions::layout`).
pub const RESERVED_FOLDER: &str = ".wormgate/";

/// Whether `key` is the gateway's own: the folder [`RESERVED_FOLDER`], or its bare name, which
/// on a file-system store would stand in the folder's way; in any case of letters, as a store
/// on a case-insensitive file system would read them.
#[must_use]
pub fn is_reserved(key: &str) -> bool {
    let folder = RESERVED_FOLDER.as_bytes();
    let bare = &folder[..folder.len() - 1];
    let k = key.as_bytes();
    k.get(..folder.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(folder))
        || k.eq_ignore_ascii_case(bare)
}

/// The longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Refuses a bucket name that no S3 store would accept (shorter names than S3's 3 characters
/// pass: the store decides those). Names that begin with '.' or hold
/// '..' would let a file-backed store step outside its bucket directory, or into its own
/// bookkeeping files (s3s-fs keeps them beside the buckets, under names that begin with '.').
///
/// # Errors
/// `BadBucketName`.
pub fn check_bucket(name: &str) -> Result<(), TargetError> {
    let inner_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    let bytes = name.as_bytes();
    let ok = (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| inner_ok(*b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("..");
    if !ok {
        return Err(TargetError::BadBucketName);
    }
    // A store's own API under a bucket-like path: a read there would be made with the
    // gateway's keys to the backend, not the client's.
    if name == "minio" {
        return Err(TargetError::ReservedBucketName);
    }
    Ok(())
}

/// Refuses a key that some store could resolve to another name than the gateway decided
/// about: a `.` or `..` segment (`a/./k`, `a/../k`: a file-backed store resolves them to `a/k`
/// and `k`, or out of the bucket), or an empty segment (`a//k`, `/k`: `a/k` and `k` there).
/// Every key the gateway acts on passes here: the request path, `x-amz-copy-source` and each
/// key of a DeleteObjects body. A trailing `/` (a folder marker) is a key of its own and stays.
///
/// # Errors
/// `DotSegment`, `EmptySegment` or `KeyTooLong`.
pub fn check_key(key: &str) -> Result<(), TargetError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(TargetError::KeyTooLong);
    }
    if is_reserved(key) {
        return Err(TargetError::ReservedKey);
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    for segment in body.split('/') {
        match segment {
            "." | ".." => return Err(TargetError::DotSegment),
            "" => return Err(TargetError::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

fn decode(raw: &str) -> Result<String, TargetError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| TargetError::NotUtf8)
}

impl Target {
    /// `/bucket/key...` (the key may contain further slashes; `/bucket/` is the bucket).
    ///
    /// # Errors
    /// The path is not absolute, names an empty bucket (`//key`) or does not decode to UTF-8.
    pub fn path_style(raw_path: &str) -> Result<Self, TargetError> {
        let rest = raw_path.strip_prefix('/').ok_or(TargetError::NotAbsolute)?;
        if rest.is_empty() {
            return Ok(Self::default());
        }
        let (bucket, key) = match rest.split_once('/') {
            Some((b, k)) => (b, (!k.is_empty()).then_some(k)),
            None => (rest, None),
        };
        let bucket = decode(bucket)?;
        if bucket.is_empty() {
            return Err(TargetError::EmptyBucket);
        }
        Self::checked(bucket, key.map(decode).transpose()?)
    }

    /// A bucket and key that both passed their checks.
    fn checked(bucket: String, key: Option<String>) -> Result<Self, TargetError> {
        check_bucket(&bucket)?;
        if let Some(k) = &key {
            check_key(k)?;
        }
        Ok(Self {
            bucket: Some(bucket),
            key,
        })
    }

    /// Resolves path-style or, when `Host` is `<bucket>.<base_domain>`, virtual-host-style.
    ///
    /// # Errors
    /// As for [`Target::path_style`].
    pub fn resolve(
        raw_path: &str,
        host: Option<&str>,
        base_domain: Option<&str>,
    ) -> Result<Self, TargetError> {
        if let Some(bucket) = host
            .zip(base_domain)
            .and_then(|(h, b)| virtual_host_bucket(h, b))
        {
            let rest = raw_path.strip_prefix('/').ok_or(TargetError::NotAbsolute)?;
            return Self::checked(
                bucket.to_owned(),
                (!rest.is_empty()).then(|| decode(rest)).transpose()?,
            );
        }
        Self::path_style(raw_path)
    }

    /// The path-style path for the backend, canonically encoded.
    #[must_use]
    pub fn backend_path(&self) -> String {
        let mut out = String::with_capacity(
            1 + self.bucket.as_ref().map_or(0, String::len)
                + self.key.as_ref().map_or(0, String::len)
                + 8,
        );
        out.push('/');
        if let Some(bucket) = &self.bucket {
            encode_into(&mut out, bucket, false);
            if let Some(key) = &self.key {
                out.push('/');
                encode_into(&mut out, key, true);
            }
        }
        out
    }
}

/// The bucket of a virtual-host-style `Host` (`<bucket>.<base_domain>[:port]`), if it is one.
#[must_use]
pub fn virtual_host_bucket<'a>(host: &'a str, base_domain: &str) -> Option<&'a str> {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let prefix = name.len().checked_sub(base_domain.len())?;
    if !name.is_char_boundary(prefix) || !name[prefix..].eq_ignore_ascii_case(base_domain) {
        return None;
    }
    name[..prefix].strip_suffix('.').filter(|b| !b.is_empty())
}

/// AWS's URI encoding: every byte but `A-Za-z0-9-._~` (and `/` in paths) as `%XX`.
/// A query parameter value in AWS's canonical encoding.
#[must_use]
pub fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s, false);
    out
}

fn encode_into(out: &mut String, s: &str, keep_slash: bool) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Query parameters of a presigned URL: they authenticate the client and must not reach the
/// backend.
const SIGNATURE_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// A decoded query string, in the client's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b&c=%20` (`+` is a space, as in form encoding and in s3s).
    #[must_use]
    pub fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode_form(k), decode_form(v))
            })
            .collect();
        Self(pairs)
    }

    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first parameter name given more than once, if any.
    #[must_use]
    pub fn repeated(&self) -> Option<&str> {
        let mut names: Vec<&str> = self.keys().collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Drops `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    /// Sets `name` to `value`, in place if it is there.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => value.clone_into(v),
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Drops the presigned-URL signature parameters.
    pub fn remove_signature(&mut self) {
        self.0
            .retain(|(k, _)| !SIGNATURE_PARAMS.contains(&k.as_str()));
    }

    /// Drops an empty `delimiter=`, which AWS treats as absent but s3s-fs takes for a real
    /// delimiter (it empties recursive listings). Other empty parameters stay: AWS echoes
    /// them (`<Prefix></Prefix>`, `<ContinuationToken></ContinuationToken>`).
    pub fn normalise_listing(&mut self) {
        self.0.retain(|(k, v)| !(v.is_empty() && k == "delimiter"));
    }

    /// The canonical encoding for the backend, or `None` when empty.
    #[must_use]
    pub fn to_backend_string(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            encode_into(&mut out, k, false);
            out.push('=');
            encode_into(&mut out, v, false);
        }
        Some(out)
    }
}

/// A query string as SigV4 signs it: each pair decoded as a form (`+` is a space), re-encoded
/// in AWS's encoding, and sorted; a name without a value gets `=`.
#[must_use]
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = Query::parse(raw)
        .0
        .into_iter()
        .map(|(k, v)| (encode_query_value(&k), encode_query_value(&v)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw.len() + 8);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn decode_form(s: &str) -> String {
    if s.contains('+') {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    } else {
        percent_decode_str(s).decode_utf8_lossy().into_owned()
    }
}

/// The object an `x-amz-copy-source` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl CopySource {
    /// Parses `bucket/key`, `/bucket/key`, either with `?versionId=v`, percent-encoded.
    ///
    /// # Errors
    /// 400 InvalidArgument when it names no key, a key or bucket that `target` refuses, or
    /// carries anything but one `versionId`.
    pub fn parse(raw: &http::HeaderValue) -> Result<Self, crate::error::GatewayError> {
        let bad = |why: String| {
            crate::error::GatewayError::InvalidArgument(format!("x-amz-copy-source: {why}"))
        };
        let raw = raw.to_str().map_err(|_| bad("not ASCII".into()))?;
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let t = Target::path_style(&path).map_err(|e| bad(e.to_string()))?;
        let query = Query::parse(query);
        if let Some(name) = query.repeated() {
            return Err(bad(format!("'{name}' is given more than once")));
        }
        if let Some(other) = query.keys().find(|k| *k != "versionId") {
            return Err(bad(format!("'{other}' is not a copy source parameter")));
        }
        let version_id = query.get("versionId").map(str::to_owned);
        match (t.bucket, t.key) {
            (Some(bucket), Some(key)) => Ok(Self {
                bucket,
                key,
                version_id,
            }),
            _ => Err(bad("it must name a bucket and a key".into())),
        }
    }

    /// The canonical header value.
    #[must_use]
    pub fn header_value(&self) -> String {
        let mut out = Target {
            bucket: Some(self.bucket.clone()),
            key: Some(self.key.clone()),
        }
        .backend_path();
        if let Some(v) = &self.version_id {
            out.push_str("?versionId=");
            out.push_str(&encode_query_value(v));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style() {
        assert_eq!(Target::path_style("/").expect("ok"), Target::default());
        let t = Target::path_style("/b/").expect("ok");
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("b"), None));
        let t = Target::path_style("/b/dir/a%20b%2Bc").expect("ok");
        assert_eq!(t.key.as_deref(), Some("dir/a b+c"));
        assert_eq!(t.backend_path(), "/b/dir/a%20b%2Bc");
        assert_eq!(Target::path_style("b"), Err(TargetError::NotAbsolute));
        assert_eq!(Target::path_style("/b/%FF"), Err(TargetError::NotUtf8));
        // `//k` would be bucket "" here and a different request at the backend.
        assert_eq!(Target::path_style("//"), Err(TargetError::EmptyBucket));
        assert_eq!(Target::path_style("//k"), Err(TargetError::EmptyBucket));
    }

    #[test]
    fn names_a_store_could_resolve_elsewhere_are_refused() {
        for (path, want) in [
            ("/b/./k", TargetError::DotSegment),
            ("/b/%2E/k", TargetError::DotSegment),
            ("/b/y/../k", TargetError::DotSegment),
            ("/b/y/%2e%2e/k", TargetError::DotSegment),
            ("/b/..", TargetError::DotSegment),
            ("/b/k/.", TargetError::DotSegment),
            ("/b/../other/k", TargetError::DotSegment),
            ("/b/d//k", TargetError::EmptySegment),
            ("/b//k", TargetError::EmptySegment),
            ("/b/%2Fk", TargetError::EmptySegment),
            ("/b/d%2F%2Fk", TargetError::EmptySegment),
            ("/../k", TargetError::BadBucketName),
            ("/%2E%2E/k", TargetError::BadBucketName),
            ("/.bucket-x/k", TargetError::BadBucketName),
            ("/a..b/k", TargetError::BadBucketName),
            ("/-b/k", TargetError::BadBucketName),
            ("/minio/admin/v3/info", TargetError::ReservedBucketName),
            ("/b%2Fc/k", TargetError::BadBucketName),
        ] {
            assert_eq!(Target::path_style(path), Err(want), "{path}");
        }
        let too_long = format!("/bkt/{}", "k".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(Target::path_style(&too_long), Err(TargetError::KeyTooLong));
        // Dots inside a segment, a folder marker and odd characters are keys of their own.
        for path in [
            "/bkt/.k",
            "/bkt/k.",
            "/bkt/...",
            "/bkt/a/..b",
            "/bkt/d/",
            "/bkt/a\\..\\b",
        ] {
            assert!(Target::path_style(path).is_ok(), "{path}");
        }
        assert_eq!(
            Target::resolve("/./k", Some("bkt.s3.local"), Some("s3.local")),
            Err(TargetError::DotSegment)
        );
        assert_eq!(
            Target::resolve("//k", Some("bkt.s3.local"), Some("s3.local")),
            Err(TargetError::EmptySegment)
        );
    }

    #[test]
    fn reencodes_what_clients_leave_raw() {
        let t = Target::path_style("/b/a(1)!*'=&.txt").expect("ok");
        assert_eq!(t.backend_path(), "/b/a%281%29%21%2A%27%3D%26.txt");
        let t = Target::path_style("/b/ключ").expect("ok");
        assert_eq!(t.key.as_deref(), Some("ключ"));
    }

    #[test]
    fn virtual_host() {
        let t = Target::resolve("/k/x", Some("bkt.s3.local:9000"), Some("s3.local")).expect("ok");
        assert_eq!(
            (t.bucket.as_deref(), t.key.as_deref()),
            (Some("bkt"), Some("k/x"))
        );
        let t = Target::resolve("/", Some("bkt.s3.local"), Some("s3.local")).expect("ok");
        assert_eq!((t.bucket.as_deref(), t.key), (Some("bkt"), None));
        // The base domain itself, or another host, is path-style.
        let t = Target::resolve("/bkt/k", Some("s3.local"), Some("s3.local")).expect("ok");
        assert_eq!(t.bucket.as_deref(), Some("bkt"));
        let t = Target::resolve("/bkt/k", Some("127.0.0.1:9000"), Some("s3.local")).expect("ok");
        assert_eq!(t.key.as_deref(), Some("k"));
    }

    #[test]
    fn query_round_trip() {
        let mut q = Query::parse(
            "list-type=2&delimiter=&prefix=a%2Fb+c&uploads&X-Amz-Signature=abc&start-after=",
        );
        q.remove_signature();
        q.normalise_listing();
        assert!(!q.has("delimiter"));
        assert_eq!(q.get("start-after"), Some(""));
        q.0.retain(|(k, _)| k != "start-after");
        assert_eq!(q.get("prefix"), Some("a/b c"));
        assert_eq!(
            q.to_backend_string().as_deref(),
            Some("list-type=2&prefix=a%2Fb%20c&uploads=")
        );
        assert_eq!(Query::parse("").to_backend_string(), None);
    }
}
