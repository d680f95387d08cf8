//! The embedded local store: s3s-fs in the gateway's own process, on an internal loopback port,
//! with keys that exist only in memory. It is the backend of `wormgate serve` with no config,
//! and the test suites' plain backend. It has no versioning and no object lock of its own.

use std::path::{Component, Path, PathBuf};

use http::Uri;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Secret;

/// A running s3s-fs store; stops when dropped.
pub struct Embedded {
    pub endpoint: Uri,
    pub access_key: String,
    pub secret_key: Secret,
    _stop: oneshot::Sender<()>,
}

impl Embedded {
    /// Starts s3s-fs over `root` (created if missing) on `127.0.0.1` and a free port.
    ///
    /// # Errors
    /// The directory cannot be created or the port cannot be bound.
    pub async fn start(root: &Path) -> std::io::Result<Self> {
        Self::start_on(root, TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Starts s3s-fs over `root` on an already bound listener.
    ///
    /// # Errors
    /// The directory cannot be created or used.
    pub fn start_on(root: &Path, listener: TcpListener) -> std::io::Result<Self> {
        let (access_key, secret_key) = crate::config::credentials::generate()?;
        Self::start_with_keys(root, listener, access_key, secret_key)
    }

    /// Starts s3s-fs over `root` on a bound listener with the given keys (a restart).
    ///
    /// # Errors
    /// The directory cannot be created or used.
    pub fn start_with_keys(
        root: &Path,
        listener: TcpListener,
        access_key: String,
        secret_key: Secret,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let store = Store {
            fs,
            root: root.to_owned(),
        };
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.expose().to_owned(),
        ));
        let service = builder.build();
        let addr = listener.local_addr()?;
        let endpoint: Uri = format!("http://{addr}")
            .parse()
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = crate::server::serve(
                listener,
                None,
                service,
                shutdown,
                std::time::Duration::from_secs(5),
                crate::server::Limits::DEFAULT,
            )
            .await
            {
                tracing::error!(error = %e, "embedded store stopped");
            }
        });
        Ok(Self {
            endpoint,
            access_key,
            secret_key,
            _stop: stop,
        })
    }
}

/// s3s-fs with two AWS behaviours restored:
/// - a key that names a directory of the store (because other keys live below it) is
///   `NoSuchKey`, not a 500; rclone HEADs such keys before listing and would otherwise retry
///   for minutes;
/// - DeleteBucket removes an empty bucket only (`BucketNotEmpty` otherwise): s3s-fs alone
///   removes the bucket's directory with everything in it. The directory is removed with one
///   `rmdir`, which the file system refuses while anything is in it, so an object written
///   at the same moment is never lost either.
struct Store {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

impl Store {
    fn names_a_directory(&self, bucket: &str, key: &str) -> bool {
        let key = Path::new(key);
        key.components().all(|c| matches!(c, Component::Normal(_)))
            && self.root.join(bucket).join(key).is_dir()
    }
}

/// Removes the empty directories below `dir`, deepest first. Each goes with `rmdir`, which
/// refuses a directory that holds anything: no file is ever removed here.
fn prune_empty_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let path = entry.path();
            prune_empty_dirs(&path);
            let _ = std::fs::remove_dir(&path);
        }
    }
}

macro_rules! store_operations {
    ($($name:ident: $input:ty => $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for Store {
            async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
                if self.names_a_directory(&req.input.bucket, &req.input.key) {
                    return Err(s3_error!(NoSuchKey));
                }
                self.fs.head_object(req).await
            }

            async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
                if self.names_a_directory(&req.input.bucket, &req.input.key) {
                    return Err(s3_error!(NoSuchKey));
                }
                self.fs.get_object(req).await
            }

            async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
                let bucket = Path::new(&req.input.bucket);
                let mut parts = bucket.components();
                if !matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) {
                    return Err(s3_error!(InvalidBucketName));
                }
                let dir = self.root.join(bucket);
                // s3s-fs leaves the empty directories of deleted `a/b` keys behind: they hold
                // no object, and go first, each with a non-recursive rmdir.
                let pruned = dir.clone();
                let _ = tokio::task::spawn_blocking(move || prune_empty_dirs(&pruned)).await;
                match tokio::fs::remove_dir(&dir).await {
                    Ok(()) => Ok(S3Response::new(DeleteBucketOutput::default())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(s3_error!(NoSuchBucket)),
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Err(s3_error!(BucketNotEmpty)),
                    Err(e) => Err(s3_error!(InternalError, "cannot remove the bucket: {e}")),
                }
            }

            $(
                async fn $name(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.fs.$name(req).await
                }
            )*
        }
    };
}

store_operations! {
    create_bucket: CreateBucketInput => CreateBucketOutput;
    copy_object: CopyObjectInput => CopyObjectOutput;
    delete_object: DeleteObjectInput => DeleteObjectOutput;
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
    head_bucket: HeadBucketInput => HeadBucketOutput;
    list_buckets: ListBucketsInput => ListBucketsOutput;
    list_objects: ListObjectsInput => ListObjectsOutput;
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
    put_object: PutObjectInput => PutObjectOutput;
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
    upload_part: UploadPartInput => UploadPartOutput;
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
    list_parts: ListPartsInput => ListPartsOutput;
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
}
