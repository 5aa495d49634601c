use anyhow::Context as _;
use clap::Parser;
use data_plane::Config;
use tokio::sync::watch;

// Per-thread caches and no global lock on the request path's small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    shared::process::install_crypto_provider();
    let config = Config::parse();
    shared::logging::init(config.log_format);
    // One request thread: a single-threaded scheduler, with no work stealing or cross-thread
    // wakeups to pay for.
    let mut runtime = match config.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(threads.into());
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let (stop, shutdown) = watch::channel(false);
    let data_plane = data_plane::start(config, listener, shutdown).await?;
    shared::process::shutdown_signal().await;
    let _ = stop.send(true);
    data_plane.join().await
}
