//! GetObject and HeadObject: forwarded as reads; in the profiles where the backend has no lock
//! of its own, the lock is shown as S3's lock headers.

use policy::lock::{ObjectRef, Profile};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::error::GatewayError;

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
        self.show_lock(&mut out, &ObjectRef::new(&bucket, &key, None))?;
        Ok(out)
    }
}
