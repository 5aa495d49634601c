//! The guard over scripted reads: what hyper gets, for every way the bytes can be split.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::*;

/// A connection that delivers `chunks` one read at a time, then ends or stays silent.
struct Script {
    chunks: VecDeque<Bytes>,
    ends: bool,
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(chunk) = self.chunks.front_mut() else {
            return if self.ends {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        };
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk[..n]);
        chunk.advance(n);
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads what hyper would read, `read_size` bytes at most at a time, until the guard ends or
/// waits. Whether it ended.
fn drain(
    guard: &mut (impl AsyncRead + Unpin + ?Sized),
    read_size: usize,
    out: &mut Vec<u8>,
) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut storage = vec![0u8; read_size];
    loop {
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(&mut *guard).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return true,
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => return false,
        }
    }
}

fn guard(chunks: Vec<Vec<u8>>, ends: bool) -> (Guard<Script>, Arc<Connection>) {
    let connection = Arc::new(Connection::default());
    let script = Script {
        chunks: chunks.into_iter().map(Bytes::from).collect(),
        ends,
    };
    (
        Guard::new(script, Arc::clone(&connection), None),
        connection,
    )
}

/// Every way of cutting `input` in two, plus one byte at a time (an empty read is the end).
fn splits(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut all: Vec<_> = (0..=input.len())
        .map(|cut| {
            let (a, b) = input.split_at(cut);
            [a, b]
                .into_iter()
                .filter(|part| !part.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .collect();
    all.push(input.iter().map(|b| vec![*b]).collect());
    all
}

/// What hyper gets from `input` over every split and read size, the same each time, and the
/// connection state after it.
fn through(input: &[u8], ends: bool) -> (Vec<u8>, bool, Arc<Connection>) {
    let mut seen = None;
    for chunks in splits(input) {
        for read_size in [1, 3, 24, 8192] {
            let (mut guard, connection) = guard(chunks.clone(), ends);
            let mut out = Vec::new();
            let ended = drain(&mut guard, read_size, &mut out);
            let refused = connection.refused.get().copied();
            match &seen {
                None => seen = Some((out, ended, refused, connection)),
                Some((first, first_ended, first_refused, _)) => {
                    assert_eq!(
                        (String::from_utf8_lossy(&out), ended, refused),
                        (String::from_utf8_lossy(first), *first_ended, *first_refused),
                        "split {:?}, reads of {read_size}",
                        chunks.iter().map(Vec::len).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
    let (out, ended, _, connection) = seen.expect("at least one split");
    (out, ended, connection)
}

const GET: &str = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
const POST_LENGTH: &str = "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
const POST_CHUNKED: &str = "POST /c HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n\
    3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 1\r\n\r\n";

#[test]
fn pipelined_messages_of_every_framing_pass_unchanged() {
    let input = [GET, POST_LENGTH, POST_CHUNKED, "\r\n", GET].concat();
    let (out, ended, connection) = through(input.as_bytes(), true);
    assert_eq!(String::from_utf8_lossy(&out), input);
    assert!(ended);
    assert!(connection.refused.get().is_none());
    for _ in 0..4 {
        assert!(connection.dispatched().refusal.is_none());
    }
}

#[test]
fn a_refused_head_is_replaced_by_the_stand_in_after_the_earlier_messages() {
    let smuggled = "GET /smuggled HTTP/1.1\r\n\r\n";
    for (framing, refusal) in [
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            Refusal::AmbiguousFraming,
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 0",
            Refusal::AmbiguousFraming,
        ),
        (
            "Content-Length: 3\r\nContent-Length: 4",
            Refusal::AmbiguousFraming,
        ),
        ("X-Folded: a\r\n b", Refusal::Malformed),
    ] {
        let refused = format!("POST /d HTTP/1.1\r\n{framing}\r\n\r\n0\r\n\r\n{smuggled}");
        let input = [POST_LENGTH, POST_CHUNKED, &refused].concat();
        let (out, ended, connection) = through(input.as_bytes(), true);
        let expected = [POST_LENGTH.as_bytes(), POST_CHUNKED.as_bytes(), STAND_IN].concat();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
        assert!(
            !ended,
            "after the stand-in hyper reads nothing, not even an end"
        );
        assert_eq!(connection.refused.get(), Some(&(2, refusal)));
        let refusals: Vec<_> = (0..3).map(|_| connection.dispatched().refusal).collect();
        assert_eq!(refusals, [None, None, Some(refusal)]);
    }
}

#[test]
fn incomplete_heads_are_held_back_and_dropped_at_the_end() {
    let partial = "GET /a HTTP/1.1\r\nHost: h\r\n";
    let (out, ended, _) = through(partial.as_bytes(), false);
    assert!(out.is_empty() && !ended);
    let (out, ended, _) = through(partial.as_bytes(), true);
    assert!(out.is_empty() && ended);
    let input = [POST_LENGTH, partial].concat();
    let (out, ended, _) = through(input.as_bytes(), false);
    assert_eq!(String::from_utf8_lossy(&out), POST_LENGTH);
    assert!(!ended);
}

#[test]
fn a_head_over_the_limit_is_refused() {
    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    input.resize(MAX_HEAD_BYTES + 10, b'a');
    let (mut guard, connection) = guard(vec![input], false);
    let mut out = Vec::new();
    assert!(!drain(&mut guard, 8192, &mut out));
    assert_eq!(out, STAND_IN);
    assert_eq!(connection.refused.get(), Some(&(0, Refusal::TooLarge)));
}

#[test]
fn http2_connections_pass_unchanged() {
    let input = [H2_PREFACE, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage"].concat();
    let (out, ended, _) = through(&input, true);
    assert_eq!(out, input);
    assert!(ended);
    // A preface after the first request is no preface: hyper refuses it, and so does the guard.
    let input = [GET.as_bytes(), &input].concat();
    let (out, _, connection) = through(&input, true);
    assert_eq!(out, [GET.as_bytes(), STAND_IN].concat());
    assert_eq!(connection.refused.get(), Some(&(1, Refusal::Malformed)));
}

#[test]
fn bytes_after_an_upgrade_request_wait_for_its_answer() {
    let upgrade = "GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    let frames = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    for (status, after) in [
        (StatusCode::SWITCHING_PROTOCOLS, frames.to_vec()),
        (StatusCode::UNAUTHORIZED, STAND_IN.to_vec()),
    ] {
        let input = [upgrade.as_bytes(), frames].concat();
        for chunks in splits(&input) {
            let (mut guard, connection) = guard(chunks, false);
            let mut out = Vec::new();
            assert!(!drain(&mut guard, 8192, &mut out));
            assert_eq!(String::from_utf8_lossy(&out), upgrade);
            connection.dispatched().answered(false, status);
            assert!(!drain(&mut guard, 8192, &mut out));
            assert_eq!(out, [upgrade.as_bytes(), &after].concat(), "{status}");
        }
    }
    // A caller that leaves while the answer is pending is seen leaving.
    let (mut left, _) = guard(vec![upgrade.as_bytes().to_vec()], true);
    assert!(drain(&mut left, 8192, &mut Vec::new()));
    // The next request after a refused upgrade is inspected like any other.
    let input = [upgrade, GET].concat();
    let (mut guard, connection) = guard(vec![input.into_bytes()], false);
    let mut out = Vec::new();
    assert!(!drain(&mut guard, 8192, &mut out));
    connection
        .dispatched()
        .answered(false, StatusCode::UNAUTHORIZED);
    assert!(!drain(&mut guard, 8192, &mut out));
    assert_eq!(String::from_utf8_lossy(&out), [upgrade, GET].concat());
    assert!(connection.dispatched().upgrade.is_none());
}

/// hyper's header read timeout starts only once hyper-util has picked HTTP/1 from the first
/// bytes, which the guard holds back: the guard times the first head itself, and only it.
#[tokio::test(start_paused = true)]
async fn a_first_head_not_in_time_ends_the_connection() {
    use tokio::io::AsyncReadExt;
    let timeout = Duration::from_secs(10);
    let slow = |first: &str| Script {
        chunks: [Bytes::from([first, "GET / HTTP/1.1\r\nX-Slow: "].concat())].into(),
        ends: false,
    };
    let started = tokio::time::Instant::now();
    let mut guarded = Guard::new(slow(""), Arc::default(), Some(timeout));
    let error = guarded.read(&mut [0u8; 64]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), timeout);

    let mut guarded = Guard::new(slow(GET), Arc::default(), Some(timeout));
    let mut buf = [0u8; 64];
    assert_eq!(guarded.read(&mut buf).await.unwrap(), GET.len());
    let later = tokio::time::timeout(timeout * 2, guarded.read(&mut buf)).await;
    assert!(later.is_err(), "the second head is hyper's to time");
}

/// The guard's cost per request, next to the head parse hyper does anyway:
///
/// ```sh
/// cargo test -p data-plane --release --lib guard_cost -- --ignored --nocapture
/// ```
///
/// `GATEHOUSE_BENCH_REQUESTS` (default 200,000) requests of each kind.
#[test]
#[ignore = "benchmark: run with --ignored"]
fn guard_cost() {
    let get = "GET /proxy-api/acme/svc/v1/chat/completions?stream=true HTTP/1.1\r\n\
        Host: gateway.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\
        Authorization: Bearer gh_0123456789abcdef0123456789abcdef\r\n\
        X-Request-Source: bench\r\n\r\n";
    let body = "{\"input\":\"01234567890123456789012345678901234567890123456789\"}";
    let post = format!(
        "POST /proxy-api/acme/svc/v1/embeddings HTTP/1.1\r\n\
         Host: gateway.example.com\r\nContent-Type: application/json\r\n\
         Authorization: Bearer gh_0123456789abcdef0123456789abcdef\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for (name, request) in [("GET", get), ("POST", &post)] {
        let requests =
            std::env::var("GATEHOUSE_BENCH_REQUESTS").map_or(200_000, |n| n.parse().unwrap());
        let input = request.repeat(requests).into_bytes();
        // Reads of up to 64 KiB, as from a socket, into a buffer already paged in; the same
        // reads without the guard are the baseline.
        let chunks: Vec<_> = input.chunks(65536).map(<[u8]>::to_vec).collect();
        let script = || Script {
            chunks: chunks.iter().cloned().map(Bytes::from).collect(),
            ends: true,
        };
        let mut out = vec![0u8; input.len()];
        let mut timed = |reader: &mut (dyn AsyncRead + Unpin)| {
            out.clear();
            let started = std::time::Instant::now();
            assert!(drain(reader, 8192, &mut out));
            let elapsed = started.elapsed();
            assert!(out == input);
            elapsed
        };
        // The best of three runs each.
        let bare = (0..3).map(|_| timed(&mut script())).min().unwrap();
        let through_guard = (0..3)
            .map(|_| timed(&mut Guard::new(script(), Arc::default(), None)))
            .min()
            .unwrap();
        // hyper's own parse of the same heads, for scale.
        let started = std::time::Instant::now();
        for _ in 0..requests * 3 {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut parsed = httparse::Request::new(&mut headers);
            let parsed = parsed.parse(std::hint::black_box(request.as_bytes()));
            assert!(parsed.is_ok_and(|s| s.is_complete()));
        }
        let parse_only = started.elapsed() / 3;
        let per = |d: std::time::Duration| d.as_nanos() as f64 / requests as f64;
        println!(
            "{name}: {:.0} ns/request through the guard, {:.0} ns without; one head parse {:.0} ns",
            per(through_guard),
            per(bare),
            per(parse_only)
        );
    }
}
