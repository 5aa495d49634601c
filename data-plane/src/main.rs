use anyhow::Context as _;
use clap::Parser;
use data_plane::Config;
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::process::install_crypto_provider();
    let config = Config::parse();
    shared::logging::init(config.log_format);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let (stop, shutdown) = watch::channel(false);
    let data_plane = data_plane::start(config, listener, shutdown).await?;
    shared::process::shutdown_signal().await;
    let _ = stop.send(true);
    data_plane.join().await
}
