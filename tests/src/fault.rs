//! A TCP fault proxy for putting between a data plane and PostgreSQL: it relays bytes until
//! told to black-hole them (a partition: nothing moves, nothing fails, like a dead switch),
//! refuse new connections, or cut every connection (a failover, a killed backend).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relay everything.
    None,
    /// Stop moving bytes in both directions and leave new connections hanging; the bytes
    /// flow again once healed, as after a partition that TCP retransmission rides out.
    Blackhole,
    /// Close new connections at once; established ones keep working.
    Refuse,
    /// Close every connection, and new ones at once.
    Cut,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and relays to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = watch::Sender::new(Fault::None);
        let task = tokio::spawn(accept(listener, target, fault.subscribe()));
        FaultProxy { addr, fault, task }
    }

    /// A proxy in front of the server of the PostgreSQL `url`.
    pub async fn in_front_of(url: &str) -> FaultProxy {
        let url = url::Url::parse(url).unwrap();
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let target = tokio::net::lookup_host(target)
            .await
            .unwrap()
            .next()
            .unwrap();
        FaultProxy::start(target).await
    }

    /// A copy of the PostgreSQL `url` that goes through this proxy.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.fault.send_replace(Fault::Cut);
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, fault: watch::Receiver<Fault>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(client, target, fault.clone()));
    }
}

async fn connection(client: TcpStream, target: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let healed = |f: &Fault| *f != Fault::Blackhole;
    if fault.wait_for(healed).await.is_err() {
        return;
    }
    if matches!(*fault.borrow(), Fault::Refuse | Fault::Cut) {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (or a cut) ends the connection: both halves are dropped.
    tokio::select! {
        _ = pump(client_read, server_write, fault.clone()) => {}
        _ = pump(server_read, client_write, fault.clone()) => {}
        _ = fault.wait_for(|f| *f == Fault::Cut) => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut fault: watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // While black-holed, nothing is read, so nothing is lost: bytes wait in the kernel.
        if fault.wait_for(|f| *f != Fault::Blackhole).await.is_err() {
            return;
        }
        let n = tokio::select! {
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = fault.wait_for(|f| *f == Fault::Blackhole) => continue,
        };
        // Bytes read just before a black-hole began are held back until it ends.
        if fault.wait_for(|f| *f != Fault::Blackhole).await.is_err()
            || to.write_all(&buf[..n]).await.is_err()
        {
            return;
        }
    }
}
