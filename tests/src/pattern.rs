//! A deterministic byte stream (byte `i` is `i % 251`) that large-body tests send and check
//! chunk by chunk, so neither side ever holds the whole body.

use bytes::Bytes;

const PERIOD: usize = 251;
/// A chunk of the pattern starting at offset 0; its length is a multiple of the period, so the
/// same chunk can be sent again and again.
pub const CHUNK_LEN: usize = PERIOD * 256;

/// One pattern chunk; clones share the bytes.
pub fn chunk() -> Bytes {
    (0..CHUNK_LEN).map(|i| (i % PERIOD) as u8).collect()
}

/// `total` bytes of pattern as chunks, the last one cut short.
pub fn chunks(total: u64) -> impl Iterator<Item = Bytes> {
    let chunk = chunk();
    let mut left = total;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK_LEN as u64) as usize;
        left -= n as u64;
        Some(chunk.slice(..n))
    })
}

/// Checks a pattern stream arriving in chunks of any size.
pub struct Checker {
    reference: Bytes,
    pub received: u64,
    pub intact: bool,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            reference: std::iter::repeat_n(chunk(), 2).flatten().collect(),
            received: 0,
            intact: true,
        }
    }
}

impl Checker {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let start = (self.received % PERIOD as u64) as usize;
            let n = data.len().min(CHUNK_LEN);
            self.intact &= data[..n] == self.reference[start..start + n];
            self.received += n as u64;
            data = &data[n..];
        }
    }
}

/// An upstream for large-body tests: `POST /upload` checks the pattern and answers
/// `{"received", "intact"}`; `GET /download/{bytes}` streams that many pattern bytes.
pub fn upstream() -> axum::Router {
    use axum::body::Body;
    use axum::extract::Path;
    use axum::routing::{get, post};
    use futures_util::StreamExt as _;
    axum::Router::new()
        .route(
            "/upload",
            post(|body: Body| async move {
                let mut checker = Checker::default();
                let mut stream = body.into_data_stream();
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(chunk) => checker.feed(&chunk),
                        Err(_) => break,
                    }
                }
                axum::Json(
                    serde_json::json!({"received": checker.received, "intact": checker.intact}),
                )
            }),
        )
        .route(
            "/download/{bytes}",
            get(|Path(bytes): Path<u64>| async move {
                let chunks = futures_util::stream::iter(
                    chunks(bytes).map(Ok::<_, std::convert::Infallible>),
                );
                Body::from_stream(chunks)
            }),
        )
}
