//! Checksums that clients send as aws-chunked trailers travel on to the backend.
//!
//! s3s verifies and decodes an aws-chunked upload; its trailing checksum (`x-amz-checksum-*`)
//! becomes known only once the body has been read. To keep the backend's own integrity check (and
//! its Object Lock rule that lock-bearing writes carry a checksum), the body is re-framed as
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with chunks of a fixed size, so the exact
//! `Content-Length` is known before the first byte is sent. Nothing is buffered: each piece of
//! the client's body is passed on as it arrives, split at chunk boundaries without copying.

use bytes::Bytes;
use futures::StreamExt;
use http_body::Frame;
use http_body_util::BodyExt;
use s3s::Body;

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue};

use crate::backend::ProxyBody;
use crate::error::GatewayError;

/// Size of each chunk sent to the backend (the last one may be shorter).
const CHUNK: u64 = 64 * 1024;

/// Length of the base64 value of each checksum a trailer can carry.
#[must_use]
pub fn checksum_value_len(trailer: &str) -> Option<u64> {
    match trailer {
        "x-amz-checksum-crc32" | "x-amz-checksum-crc32c" => Some(8),
        "x-amz-checksum-crc64nvme" => Some(12),
        "x-amz-checksum-sha1" => Some(28),
        "x-amz-checksum-sha256" => Some(44),
        _ => None,
    }
}

fn hex_len(n: u64) -> u64 {
    u64::from((64 - n.leading_zeros()).div_ceil(4).max(1))
}

fn chunk_wire_len(size: u64) -> u64 {
    hex_len(size) + 2 + size + 2
}

/// The exact encoded length of `decoded_len` bytes and one trailer.
#[must_use]
pub fn encoded_len(decoded_len: u64, trailer: &str, value_len: u64) -> u64 {
    let full = decoded_len / CHUNK;
    let rest = decoded_len % CHUNK;
    let data = full * chunk_wire_len(CHUNK) + if rest > 0 { chunk_wire_len(rest) } else { 0 };
    // "0\r\n", "<name>:<value>\r\n", "\r\n"
    data + 3 + trailer.len() as u64 + 1 + value_len + 2 + 2
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the client's trailers come from once its body has been read (s3s's `TrailingHeaders`).
pub type TrailerSource = Box<dyn FnMut() -> Option<http::HeaderMap> + Send>;

struct State {
    body: Body,
    trailers: TrailerSource,
    trailer: String,
    value_len: u64,
    decoded_len: u64,
    sent: u64,
    left_in_chunk: u64,
    pending: Option<Bytes>,
    need_crlf: bool,
    done: bool,
}

fn err(msg: String) -> BoxError {
    msg.into()
}

impl State {
    /// The next piece of the encoded body, or `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, BoxError>> {
        if self.done {
            return None;
        }
        if self.need_crlf {
            self.need_crlf = false;
            return Some(Ok(Bytes::from_static(b"\r\n")));
        }
        loop {
            if let Some(data) = self.pending.as_mut() {
                if self.left_in_chunk == 0 {
                    let size = CHUNK.min(self.decoded_len - self.sent);
                    if size == 0 {
                        self.done = true;
                        return Some(Err(err(
                            "the body is longer than its declared length".into()
                        )));
                    }
                    self.left_in_chunk = size;
                    return Some(Ok(Bytes::from(format!("{size:x}\r\n"))));
                }
                let n = usize::try_from(self.left_in_chunk)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let piece = data.split_to(n);
                if data.is_empty() {
                    self.pending = None;
                }
                self.left_in_chunk -= n as u64;
                self.sent += n as u64;
                self.need_crlf = self.left_in_chunk == 0;
                return Some(Ok(piece));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        self.pending = Some(data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    return Some(self.finish());
                }
            }
        }
    }

    fn finish(&mut self) -> Result<Bytes, BoxError> {
        if self.sent != self.decoded_len {
            return Err(err(format!(
                "the body ended after {} of {} bytes",
                self.sent, self.decoded_len
            )));
        }
        let trailers = (self.trailers)()
            .ok_or_else(|| err("the client's trailing checksum is missing".into()))?;
        let value = trailers
            .get(self.trailer.as_str())
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                err(format!(
                    "the client did not send the trailer {}",
                    self.trailer
                ))
            })?;
        if value.len() as u64 != self.value_len {
            return Err(err(format!(
                "the trailer {} has a malformed value",
                self.trailer
            )));
        }
        Ok(Bytes::from(format!(
            "0\r\n{}:{value}\r\n\r\n",
            self.trailer
        )))
    }
}

/// Re-frames a decoded body with its trailing checksum. Returns the body and its encoded length.
#[must_use]
pub fn reframe(
    body: Body,
    decoded_len: u64,
    trailer: &str,
    value_len: u64,
    trailers: TrailerSource,
) -> (ProxyBody, u64) {
    let state = State {
        body,
        trailers,
        trailer: trailer.to_owned(),
        value_len,
        decoded_len,
        sent: 0,
        left_in_chunk: 0,
        pending: None,
        need_crlf: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    });
    let body = http_body_util::StreamBody::new(stream.map(|r| r.map(Frame::data))).boxed_unsync();
    (body, encoded_len(decoded_len, trailer, value_len))
}

/// Prepares a decoded aws-chunked upload whose client announced `x-amz-trailer` for the backend:
/// the re-framed body, and in `backend_headers` its encoded length, decoded length, trailer name
/// and `aws-chunked` coding.
///
/// # Errors
/// A trailer that is not a checksum, or a request without its decoded length.
pub fn forward(
    body: Body,
    client_headers: &HeaderMap,
    trailers: s3s::TrailingHeaders,
    backend_headers: &mut HeaderMap,
) -> Result<ProxyBody, GatewayError> {
    let name = client_headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let value_len = checksum_value_len(&name)
        .ok_or_else(|| GatewayError::InvalidRequest(format!("unsupported trailer {name:?}")))?;
    // s3s has set Content-Length to the decoded length.
    let decoded_len = client_headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .ok_or_else(|| GatewayError::InvalidRequest("missing decoded content length".into()))?;
    let (body, encoded_len) = reframe(
        body,
        decoded_len,
        &name,
        value_len,
        Box::new(move || trailers.take()),
    );
    backend_headers.insert(CONTENT_LENGTH, HeaderValue::from(encoded_len));
    backend_headers.insert(
        "x-amz-decoded-content-length",
        HeaderValue::from(decoded_len),
    );
    // `name` is one of the fixed checksum names, so it is a valid header value.
    backend_headers.insert(
        "x-amz-trailer",
        HeaderValue::from_str(&name)
            .map_err(|_| GatewayError::InvalidRequest("bad x-amz-trailer".into()))?,
    );
    let coding = match backend_headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some(rest) => HeaderValue::from_str(&format!("aws-chunked,{rest}"))
            .unwrap_or(HeaderValue::from_static("aws-chunked")),
        None => HeaderValue::from_static("aws-chunked"),
    };
    backend_headers.insert(CONTENT_ENCODING, coding);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(hex_len(0), 1);
        assert_eq!(hex_len(15), 1);
        assert_eq!(hex_len(16), 2);
        assert_eq!(hex_len(CHUNK), 5);
        // Empty body: "0\r\n" + "x-amz-checksum-crc32:AAAAAA==\r\n" + "\r\n"
        assert_eq!(
            encoded_len(0, "x-amz-checksum-crc32", 8),
            3 + 20 + 1 + 8 + 2 + 2
        );
    }

    #[tokio::test]
    async fn encoded_body_has_the_announced_length_and_shape() {
        for len in [0usize, 1, 65_535, 65_536, 65_537, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            // Feed the body in awkward pieces.
            let pieces: Vec<Result<Frame<Bytes>, BoxError>> = data
                .chunks(7_001)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let body = Body::http_body_unsync(http_body_util::StreamBody::new(
                futures::stream::iter(pieces),
            ));
            let trailers = test_trailers("x-amz-checksum-crc32", "AAAAAA==");
            let (encoded, announced) =
                reframe(body, len as u64, "x-amz-checksum-crc32", 8, trailers);
            let wire = encoded.collect().await.expect("encodes").to_bytes();
            assert_eq!(wire.len() as u64, announced, "len {len}");
            assert!(wire.ends_with(b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"));
            assert_eq!(decode(&wire), data, "len {len}");
        }
    }

    fn test_trailers(name: &'static str, value: &'static str) -> TrailerSource {
        let mut h = http::HeaderMap::new();
        h.insert(name, http::HeaderValue::from_static(value));
        let mut h = Some(h);
        Box::new(move || h.take())
    }

    fn decode(mut wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line_end = wire
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&wire[..line_end]).expect("utf8"), 16)
                    .expect("hex");
            wire = &wire[line_end + 2..];
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&wire[..size]);
            assert_eq!(&wire[size..size + 2], b"\r\n");
            wire = &wire[size + 2..];
        }
    }
}
