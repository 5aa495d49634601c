//! Where a request body ends, found the way hyper's decoder finds it, so the next head is
//! inspected from its first byte. Body bytes are only counted (chunk data is skipped by length);
//! only chunk-size lines and trailers are read byte by byte.

/// The body still to come of the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Length(u64),
    Chunked { state: Chunk, size: u64 },
}

/// Where a chunked body is, as in hyper's `ChunkedState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Start,
    Size,
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

/// What a run of bytes did to the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Every byte belonged to the body, which goes on.
    More,
    /// The body ended after this many bytes; the rest is the next message.
    Ended(usize),
    /// The chunked syntax is broken: hyper fails the body and reads nothing after it.
    Broken,
}

impl Body {
    /// A body of `length` bytes (more than zero).
    pub fn length(length: u64) -> Body {
        Body::Length(length)
    }

    pub fn chunked() -> Body {
        Body::Chunked {
            state: Chunk::Start,
            size: 0,
        }
    }

    /// Consumes `bytes`, the next bytes of the connection.
    pub fn advance(&mut self, bytes: &[u8]) -> Advance {
        match self {
            Body::Length(remaining) => {
                let available = bytes.len() as u64;
                if available < *remaining {
                    *remaining -= available;
                    Advance::More
                } else {
                    // Fits in usize: it is at most `bytes.len()`.
                    let end = *remaining as usize;
                    *remaining = 0;
                    Advance::Ended(end)
                }
            }
            Body::Chunked { state, size } => advance_chunked(state, size, bytes),
        }
    }
}

fn advance_chunked(state: &mut Chunk, size: &mut u64, bytes: &[u8]) -> Advance {
    let mut at = 0;
    while at < bytes.len() {
        if *state == Chunk::Data {
            let take = (bytes.len() - at).min(usize::try_from(*size).unwrap_or(usize::MAX));
            at += take;
            *size -= take as u64;
            if *size == 0 {
                *state = Chunk::DataCr;
            }
            continue;
        }
        let byte = bytes[at];
        at += 1;
        *state = match (*state, byte) {
            (Chunk::Start | Chunk::Size, _) if byte.is_ascii_hexdigit() => {
                let digit = u64::from((byte as char).to_digit(16).unwrap_or_default());
                match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                    Some(grown) => *size = grown,
                    None => return Advance::Broken,
                }
                Chunk::Size
            }
            (Chunk::Size | Chunk::SizeSpace, b' ' | b'\t') => Chunk::SizeSpace,
            (Chunk::Size | Chunk::SizeSpace, b';') => Chunk::Extension,
            (Chunk::Size | Chunk::SizeSpace | Chunk::Extension, b'\r') => Chunk::SizeLf,
            (Chunk::Extension, b'\n') => return Advance::Broken,
            (Chunk::Extension, _) => Chunk::Extension,
            (Chunk::SizeLf, b'\n') if *size == 0 => Chunk::EndCr,
            (Chunk::SizeLf, b'\n') => Chunk::Data,
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Start,
            (Chunk::EndCr, b'\r') => Chunk::EndLf,
            (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
            (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
            (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
            (Chunk::EndLf, b'\n') => return Advance::Ended(at),
            _ => return Advance::Broken,
        };
    }
    Advance::More
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` split at `cut`; where the body ended, or `None` if it did not.
    fn end_with_cut(mut body: Body, bytes: &[u8], cut: usize) -> Result<Option<usize>, ()> {
        let (first, second) = bytes.split_at(cut);
        match body.advance(first) {
            Advance::Ended(n) => return Ok(Some(n)),
            Advance::Broken => return Err(()),
            Advance::More => {}
        }
        match body.advance(second) {
            Advance::Ended(n) => Ok(Some(cut + n)),
            Advance::Broken => Err(()),
            Advance::More => Ok(None),
        }
    }

    /// The same answer for every split of `bytes` in two.
    fn end_of(body: Body, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let whole = end_with_cut(body, bytes, 0);
        for cut in 1..=bytes.len() {
            assert_eq!(
                end_with_cut(body, bytes, cut),
                whole,
                "cut at {cut} of {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        whole
    }

    #[test]
    fn length_bodies_end_after_their_length() {
        assert_eq!(end_of(Body::length(5), b"helloGET /"), Ok(Some(5)));
        assert_eq!(end_of(Body::length(5), b"hello"), Ok(Some(5)));
        assert_eq!(end_of(Body::length(6), b"hello"), Ok(None));
        let mut body = Body::length(u64::MAX - 2);
        assert_eq!(body.advance(&[0; 1000]), Advance::More);
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        let next = b"GET / HTTP/1.1\r\n\r\n";
        for body in [
            &b"0\r\n\r\n"[..],
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5\r\n0\r\n\r\n\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n00000\r\n\r\n",
            b"a;name=value;x\r\n0123456789\r\n0;last\r\n\r\n",
            b"5 \t ;ext\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Other: a\nb\r\n\r\n",
            b"ffffffffffffffff\r\n",
        ] {
            let mut bytes = body.to_vec();
            bytes.extend_from_slice(next);
            let expected = if body.starts_with(b"ffff") {
                None
            } else {
                Some(body.len())
            };
            assert_eq!(
                end_of(Body::chunked(), &bytes),
                Ok(expected),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn broken_chunked_syntax_is_reported_as_hyper_refuses_it() {
        for body in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5x\r\n",
            b"5 5\r\n",
            b"5\n",
            b"5;ext\n",
            b"5\r\nhelloX",
            b"5\r\nhello\rX",
            b"0\r\n\rX",
            b"0\r\nX-Trailer: 1\rX",
            b"10000000000000000\r\n",
            b"-1\r\n",
        ] {
            assert_eq!(
                end_of(Body::chunked(), body),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// A chunked body fed one byte at a time ends on its last byte.
    #[test]
    fn byte_by_byte_chunked_ends_on_the_last_byte() {
        let bytes = b"3\r\nabc\r\n0\r\nT: 1\r\n\r\n";
        let mut body = Body::chunked();
        for (i, byte) in bytes.iter().enumerate() {
            let expected = if i + 1 == bytes.len() {
                Advance::Ended(1)
            } else {
                Advance::More
            };
            assert_eq!(
                body.advance(std::slice::from_ref(byte)),
                expected,
                "byte {i}"
            );
        }
    }
}
