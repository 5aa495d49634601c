//! Raw TCP on both sides of the gateway, for the cases an HTTP library would normalise or refuse
//! to produce: ambiguous framing, dot-segments, absolute-form targets, hop-by-hop responses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a raw exchange produced.
#[derive(Debug)]
pub struct RawReply {
    /// Everything the server sent, lossily decoded.
    pub text: String,
    /// Whether the server closed the connection before the deadline.
    pub closed: bool,
}

impl RawReply {
    /// The status code of the first response, 0 when there is none.
    pub fn status(&self) -> u16 {
        self.text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// How many responses the server sent.
    pub fn responses(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count()
    }
}

/// Sends `request` as is, then reads until the server closes or `deadline` passes.
pub async fn exchange(addr: SocketAddr, request: &[u8], deadline: Duration) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    stream.write_all(request).await.expect("writing");
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    RawReply {
        text: String::from_utf8_lossy(&received).into_owned(),
        closed,
    }
}

/// An upstream that answers every request head with the same canned bytes and records the
/// heads it received.
#[derive(Clone)]
pub struct RawUpstream {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    pub async fn start(reply: &'static [u8]) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let addr = listener.local_addr().expect("bound");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    if let Ok(mut all) = seen.lock() {
                        all.push(String::from_utf8_lossy(&head).into_owned());
                    }
                    let _ = stream.write_all(reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        RawUpstream { addr, heads }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request heads received so far (request line and headers, as sent).
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// Reads from `stream` until a whole request head (through its blank line) has arrived, with
/// whatever followed it in the same reads; `None` if the peer closes or fails first.
pub async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}
