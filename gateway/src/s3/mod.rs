//! S3's wire format: what a request addresses (`target`) and which operation it is (`op`), the
//! lock headers and the small XML bodies the gateway reads and writes, and the replies it makes.
//! Everything that parses or renders S3 text lives here, and nothing here does I/O.

pub mod list_xml;
pub mod lock_headers;
pub mod lock_xml;
pub mod op;
pub mod target;

use http::header;
use http::{HeaderValue, StatusCode};
use s3s::{Body, S3Response};

/// A reply the gateway makes itself.
pub(crate) fn reply_with(status: StatusCode, xml: Option<String>) -> S3Response<Body> {
    let mut out = match xml {
        Some(xml) => {
            let mut r = S3Response::with_status(Body::from(xml), status);
            r.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
            r
        }
        None => S3Response::with_status(Body::empty(), status),
    };
    out.headers.remove(header::TRANSFER_ENCODING);
    out
}
