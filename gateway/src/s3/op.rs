//! Request classification: every S3 request becomes one `S3Op`.
//!
//! This is the first gate of the request path. It must never guess in the permissive direction:
//! a request that is not GET/HEAD and is not recognised becomes `S3Op::Unknown`, which the
//! gateway refuses instead of forwarding blindly.

use http::{HeaderMap, Method};

use crate::s3::target::{Query, Target};

/// A bucket-level sub-resource (`?versioning`, `?lifecycle`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketConfig {
    Accelerate,
    Acl,
    Analytics,
    Cors,
    Encryption,
    IntelligentTiering,
    Inventory,
    Lifecycle,
    Location,
    Logging,
    Metrics,
    Notification,
    ObjectLock,
    OwnershipControls,
    Policy,
    PolicyStatus,
    PublicAccessBlock,
    Replication,
    RequestPayment,
    Tagging,
    Versioning,
    Website,
}

impl BucketConfig {
    const ALL: [(&'static str, Self); 22] = [
        ("accelerate", Self::Accelerate),
        ("acl", Self::Acl),
        ("analytics", Self::Analytics),
        ("cors", Self::Cors),
        ("encryption", Self::Encryption),
        ("intelligent-tiering", Self::IntelligentTiering),
        ("inventory", Self::Inventory),
        ("lifecycle", Self::Lifecycle),
        ("location", Self::Location),
        ("logging", Self::Logging),
        ("metrics", Self::Metrics),
        ("notification", Self::Notification),
        ("object-lock", Self::ObjectLock),
        ("ownershipControls", Self::OwnershipControls),
        ("policy", Self::Policy),
        ("policyStatus", Self::PolicyStatus),
        ("publicAccessBlock", Self::PublicAccessBlock),
        ("replication", Self::Replication),
        ("requestPayment", Self::RequestPayment),
        ("tagging", Self::Tagging),
        ("versioning", Self::Versioning),
        ("website", Self::Website),
    ];

    fn find(query: &Query) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(name, _)| query.has(name))
            .map(|(_, c)| *c)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("?", |(name, _)| name)
    }
}

/// An object-level sub-resource other than retention and legal hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectConfig {
    Tagging,
    Acl,
    Attributes,
}

/// Every S3 operation the gateway knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    GetBucketConfig(BucketConfig),
    PutBucketConfig(BucketConfig),
    DeleteBucketConfig(BucketConfig),
    DeleteObjects,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    GetObjectRetention,
    PutObjectRetention,
    GetObjectLegalHold,
    PutObjectLegalHold,
    GetObjectConfig(ObjectConfig),
    PutObjectConfig(ObjectConfig),
    DeleteObjectTagging,
    RestoreObject,
    SelectObjectContent,
    /// Not recognised. Forwarded only when the method is GET or HEAD.
    Unknown,
}

/// Sub-resources that name an operation of their own, beside the bucket settings.
const OBJECT_SUB_RESOURCES: &[&str] = &[
    "retention",
    "legal-hold",
    "attributes",
    "uploads",
    "delete",
    "restore",
    "select",
    "versions",
    "torrent",
];

/// Query parameters that qualify a request without naming a different operation.
const PLAIN_PARAMS: &[&str] = &["x-id", "versionId", "partNumber", "uploadId"];

impl S3Op {
    /// Classifies a request. `target` is the already-resolved bucket and key (path-style or
    /// virtual-host-style), `query` the request's decoded query without signature parameters.
    ///
    /// A mutating request that names more than one sub-resource (`?encryption&lifecycle`), or
    /// carries `x-amz-copy-source` where no copy is made, is `Unknown`: a store may route it by
    /// another of its names than the gateway decided on.
    #[must_use]
    pub fn classify(method: &Method, target: &Target, query: &Query, headers: &HeaderMap) -> Self {
        let op = Self::classify_one(method, target, query, headers);
        if matches!(*method, Method::GET | Method::HEAD) {
            return op;
        }
        let sub_resources = query
            .keys()
            .filter(|k| {
                OBJECT_SUB_RESOURCES.contains(k) || BucketConfig::ALL.iter().any(|(n, _)| n == k)
            })
            .count();
        let copy_elsewhere = headers.contains_key("x-amz-copy-source")
            && !matches!(op, Self::CopyObject | Self::UploadPartCopy);
        if sub_resources > 1 || copy_elsewhere {
            return Self::Unknown;
        }
        op
    }

    fn classify_one(method: &Method, target: &Target, query: &Query, headers: &HeaderMap) -> Self {
        match (&target.bucket, &target.key) {
            (None, _) => match *method {
                Method::GET => Self::ListBuckets,
                _ => Self::Unknown,
            },
            (Some(_), None) => Self::classify_bucket(method, query),
            (Some(_), Some(_)) => Self::classify_object(method, query, headers),
        }
    }

    fn classify_bucket(method: &Method, query: &Query) -> Self {
        let config = BucketConfig::find(query);
        match *method {
            Method::HEAD => Self::HeadBucket,
            Method::GET => {
                if query.has("versions") {
                    Self::ListObjectVersions
                } else if query.has("uploads") {
                    Self::ListMultipartUploads
                } else if let Some(c) = config {
                    Self::GetBucketConfig(c)
                } else if query.get("list-type") == Some("2") {
                    Self::ListObjectsV2
                } else {
                    Self::ListObjects
                }
            }
            Method::PUT => match config {
                Some(c) => Self::PutBucketConfig(c),
                None if only_plain_params(query) => Self::CreateBucket,
                None => Self::Unknown,
            },
            Method::DELETE => match config {
                Some(c) => Self::DeleteBucketConfig(c),
                None if only_plain_params(query) => Self::DeleteBucket,
                None => Self::Unknown,
            },
            Method::POST if query.has("delete") => Self::DeleteObjects,
            _ => Self::Unknown,
        }
    }

    fn classify_object(method: &Method, query: &Query, headers: &HeaderMap) -> Self {
        let copy_source = headers.contains_key("x-amz-copy-source");
        match *method {
            Method::HEAD => Self::HeadObject,
            Method::GET => {
                if query.has("retention") {
                    Self::GetObjectRetention
                } else if query.has("legal-hold") {
                    Self::GetObjectLegalHold
                } else if query.has("tagging") {
                    Self::GetObjectConfig(ObjectConfig::Tagging)
                } else if query.has("acl") {
                    Self::GetObjectConfig(ObjectConfig::Acl)
                } else if query.has("attributes") {
                    Self::GetObjectConfig(ObjectConfig::Attributes)
                } else if query.has("uploadId") {
                    Self::ListParts
                } else {
                    Self::GetObject
                }
            }
            Method::PUT => {
                if query.has("retention") {
                    Self::PutObjectRetention
                } else if query.has("legal-hold") {
                    Self::PutObjectLegalHold
                } else if query.has("tagging") {
                    Self::PutObjectConfig(ObjectConfig::Tagging)
                } else if query.has("acl") {
                    Self::PutObjectConfig(ObjectConfig::Acl)
                } else if !only_plain_params(query) {
                    Self::Unknown
                } else if query.has("uploadId") && query.has("partNumber") {
                    if copy_source {
                        Self::UploadPartCopy
                    } else {
                        Self::UploadPart
                    }
                } else if query.has("uploadId") || query.has("partNumber") {
                    Self::Unknown
                } else if copy_source {
                    Self::CopyObject
                } else {
                    Self::PutObject
                }
            }
            Method::POST => {
                if query.has("uploads") {
                    Self::CreateMultipartUpload
                } else if query.has("uploadId") {
                    Self::CompleteMultipartUpload
                } else if query.has("restore") {
                    Self::RestoreObject
                } else if query.has("select") {
                    Self::SelectObjectContent
                } else {
                    Self::Unknown
                }
            }
            Method::DELETE => {
                if query.has("tagging") {
                    Self::DeleteObjectTagging
                } else if !only_plain_params(query) {
                    Self::Unknown
                } else if query.has("uploadId") {
                    Self::AbortMultipartUpload
                } else {
                    Self::DeleteObject
                }
            }
            _ => Self::Unknown,
        }
    }

    /// Operations that change nothing on the backend.
    #[must_use]
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            Self::ListBuckets
                | Self::HeadBucket
                | Self::ListObjects
                | Self::ListObjectsV2
                | Self::ListObjectVersions
                | Self::ListMultipartUploads
                | Self::GetBucketConfig(_)
                | Self::GetObject
                | Self::HeadObject
                | Self::ListParts
                | Self::GetObjectRetention
                | Self::GetObjectLegalHold
                | Self::GetObjectConfig(_)
                | Self::SelectObjectContent
        )
    }

    /// The AWS operation name, for logs and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ListBuckets => "ListBuckets",
            Self::CreateBucket => "CreateBucket",
            Self::DeleteBucket => "DeleteBucket",
            Self::HeadBucket => "HeadBucket",
            Self::ListObjects => "ListObjects",
            Self::ListObjectsV2 => "ListObjectsV2",
            Self::ListObjectVersions => "ListObjectVersions",
            Self::ListMultipartUploads => "ListMultipartUploads",
            Self::GetBucketConfig(_) => "GetBucketConfig",
            Self::PutBucketConfig(_) => "PutBucketConfig",
            Self::DeleteBucketConfig(_) => "DeleteBucketConfig",
            Self::DeleteObjects => "DeleteObjects",
            Self::GetObject => "GetObject",
            Self::HeadObject => "HeadObject",
            Self::PutObject => "PutObject",
            Self::CopyObject => "CopyObject",
            Self::DeleteObject => "DeleteObject",
            Self::CreateMultipartUpload => "CreateMultipartUpload",
            Self::UploadPart => "UploadPart",
            Self::UploadPartCopy => "UploadPartCopy",
            Self::CompleteMultipartUpload => "CompleteMultipartUpload",
            Self::AbortMultipartUpload => "AbortMultipartUpload",
            Self::ListParts => "ListParts",
            Self::GetObjectRetention => "GetObjectRetention",
            Self::PutObjectRetention => "PutObjectRetention",
            Self::GetObjectLegalHold => "GetObjectLegalHold",
            Self::PutObjectLegalHold => "PutObjectLegalHold",
            Self::GetObjectConfig(_) => "GetObjectConfig",
            Self::PutObjectConfig(_) => "PutObjectConfig",
            Self::DeleteObjectTagging => "DeleteObjectTagging",
            Self::RestoreObject => "RestoreObject",
            Self::SelectObjectContent => "SelectObjectContent",
            Self::Unknown => "Unknown",
        }
    }
}

fn only_plain_params(query: &Query) -> bool {
    query.keys().all(|k| PLAIN_PARAMS.contains(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str, query: &str, headers: &[(&'static str, &'static str)]) -> S3Op {
        let target = Target::path_style(path).expect("path");
        let query = Query::parse(query);
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        S3Op::classify(&method, &target, &query, &map)
    }

    #[test]
    fn table() {
        let copy = [("x-amz-copy-source", "/b/src")];
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [(&'static str, &'static str)],
            S3Op,
        );
        let cases: &[Case] = &[
            ("GET", "/", "", &[], S3Op::ListBuckets),
            ("PUT", "/", "", &[], S3Op::Unknown),
            ("PUT", "/b", "", &[], S3Op::CreateBucket),
            ("DELETE", "/b", "", &[], S3Op::DeleteBucket),
            ("HEAD", "/b", "", &[], S3Op::HeadBucket),
            ("GET", "/b", "", &[], S3Op::ListObjects),
            (
                "GET",
                "/b",
                "list-type=2&prefix=a",
                &[],
                S3Op::ListObjectsV2,
            ),
            ("GET", "/b", "versions", &[], S3Op::ListObjectVersions),
            ("GET", "/b", "uploads", &[], S3Op::ListMultipartUploads),
            (
                "GET",
                "/b",
                "object-lock",
                &[],
                S3Op::GetBucketConfig(BucketConfig::ObjectLock),
            ),
            (
                "PUT",
                "/b",
                "versioning",
                &[],
                S3Op::PutBucketConfig(BucketConfig::Versioning),
            ),
            (
                "PUT",
                "/b",
                "lifecycle",
                &[],
                S3Op::PutBucketConfig(BucketConfig::Lifecycle),
            ),
            (
                "DELETE",
                "/b",
                "policy",
                &[],
                S3Op::DeleteBucketConfig(BucketConfig::Policy),
            ),
            ("PUT", "/b", "bogus", &[], S3Op::Unknown),
            ("DELETE", "/b", "bogus", &[], S3Op::Unknown),
            ("POST", "/b", "delete", &[], S3Op::DeleteObjects),
            ("POST", "/b", "", &[], S3Op::Unknown),
            ("PATCH", "/b/k", "", &[], S3Op::Unknown),
            ("GET", "/b/k", "", &[], S3Op::GetObject),
            ("GET", "/b/k", "versionId=1", &[], S3Op::GetObject),
            ("HEAD", "/b/k", "", &[], S3Op::HeadObject),
            ("PUT", "/b/k", "", &[], S3Op::PutObject),
            ("PUT", "/b/k", "x-id=PutObject", &[], S3Op::PutObject),
            ("PUT", "/b/k", "", &copy, S3Op::CopyObject),
            (
                "PUT",
                "/b/k",
                "partNumber=1&uploadId=u",
                &[],
                S3Op::UploadPart,
            ),
            (
                "PUT",
                "/b/k",
                "partNumber=1&uploadId=u",
                &copy,
                S3Op::UploadPartCopy,
            ),
            ("PUT", "/b/k", "uploadId=u", &[], S3Op::Unknown),
            (
                "PUT",
                "/b/k",
                "retention&versionId=1",
                &[],
                S3Op::PutObjectRetention,
            ),
            ("PUT", "/b/k", "legal-hold", &[], S3Op::PutObjectLegalHold),
            (
                "PUT",
                "/b/k",
                "tagging",
                &[],
                S3Op::PutObjectConfig(ObjectConfig::Tagging),
            ),
            ("PUT", "/b/k", "whatever", &[], S3Op::Unknown),
            ("GET", "/b/k", "retention", &[], S3Op::GetObjectRetention),
            ("GET", "/b/k", "legal-hold", &[], S3Op::GetObjectLegalHold),
            ("GET", "/b/k", "uploadId=u", &[], S3Op::ListParts),
            ("POST", "/b/k", "uploads", &[], S3Op::CreateMultipartUpload),
            (
                "POST",
                "/b/k",
                "uploadId=u",
                &[],
                S3Op::CompleteMultipartUpload,
            ),
            ("POST", "/b/k", "", &[], S3Op::Unknown),
            ("DELETE", "/b/k", "", &[], S3Op::DeleteObject),
            ("DELETE", "/b/k", "versionId=3", &[], S3Op::DeleteObject),
            (
                "DELETE",
                "/b/k",
                "uploadId=u",
                &[],
                S3Op::AbortMultipartUpload,
            ),
            ("DELETE", "/b/k", "tagging", &[], S3Op::DeleteObjectTagging),
            ("DELETE", "/b/k", "other", &[], S3Op::Unknown),
            // Two sub-resources, or a copy source where no copy is made: a store could take
            // another of them than the gateway did.
            ("PUT", "/b", "encryption&lifecycle", &[], S3Op::Unknown),
            ("PUT", "/b/k", "retention&legal-hold", &[], S3Op::Unknown),
            ("PUT", "/b/k", "tagging&retention", &[], S3Op::Unknown),
            ("PUT", "/b/k", "retention", &copy, S3Op::Unknown),
            ("POST", "/b/k", "uploads", &copy, S3Op::Unknown),
            (
                "GET",
                "/b",
                "versions&uploads",
                &[],
                S3Op::ListObjectVersions,
            ),
        ];
        for (method, path, query, headers, want) in cases {
            assert_eq!(
                op(method, path, query, headers),
                *want,
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn read_only_set_has_no_mutation() {
        for op in [
            S3Op::PutObject,
            S3Op::DeleteObject,
            S3Op::DeleteObjects,
            S3Op::PutObjectRetention,
            S3Op::PutBucketConfig(BucketConfig::Versioning),
            S3Op::CompleteMultipartUpload,
            S3Op::Unknown,
        ] {
            assert!(!op.is_read_only(), "{op:?}");
        }
    }
}
