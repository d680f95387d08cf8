//! GetObject and HeadObject: forwarded as reads; in the profiles where the backend has no lock
//! of its own, the lock is shown as S3's lock headers.

use policy::lock::{ObjectRef, Profile};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::error::GatewayError;
use crate::s3::lock_headers;

use crate::enforce::{Call, Gateway};

impl Gateway {
    /// HEAD and GET: in the gateway profile the lock lives in metadata and the index, and is
    /// shown as S3's lock headers.
    pub(crate) async fn read_object(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let headers = backend_headers(&call.headers);
        let mut out = reply(self.forward_read(&mut call, headers).await?);
        if self.locks.profile_of(&bucket) == Profile::Native
            || !out.status.is_some_and(|s| s.is_success())
        {
            return Ok(out);
        }
        let from_meta = lock_headers::from_backend(&out.headers);
        let indexed = self
            .locks
            .index
            .get(&ObjectRef::new(&bucket, &key, None))?
            .map(|r| r.lock);
        let lock = match (from_meta, indexed) {
            (Some(a), Some(b)) => Some(a.strictest(b)),
            (a, b) => a.or(b),
        };
        let hold_set = out.headers.contains_key(lock_headers::META_LEGAL_HOLD);
        if let Some(lock) = lock.filter(|l| !l.is_empty() || hold_set) {
            lock_headers::set_response_headers(&mut out.headers, &lock);
        }
        Ok(out)
    }
}
