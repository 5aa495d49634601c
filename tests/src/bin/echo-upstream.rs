//! The demo upstream `./scripts/up` starts: answers every request with a JSON echo of its
//! method, path, query, headers and body, so the README's example works on a machine offline.

use std::net::SocketAddr;

use clap::Parser;

/// Echo server: every request is answered with a JSON description of itself.
#[derive(Parser)]
#[command(name = "echo-upstream")]
struct Args {
    /// Address (host:port) to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    shared::logging::init(shared::logging::LogFormat::Text);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    gatehouse_tests::upstream::EchoUpstream::serve(listener);
    tracing::info!(addr = %args.listen, "echo upstream listening");
    shared::process::shutdown_signal().await;
    Ok(())
}
