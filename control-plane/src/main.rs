use clap::Parser;
use control_plane::config::{Cli, Command};
use control_plane::{bootstrap, db, reseal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::process::install_crypto_provider();
    let cli = Cli::parse();
    shared::logging::init(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => control_plane::run(cli.config, shared::process::shutdown_signal()).await,
        Command::CreateAdmin { email, key_name } => {
            let config = &cli.config;
            let pool = db::connect_and_migrate(&config.database_url, 2).await?;
            let key = bootstrap::create_admin(&pool, &email, &key_name).await?;
            println!("{key}");
            Ok(())
        }
        Command::Reseal => {
            let config = &cli.config;
            let keyring = config
                .encryption_keys
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("GATEHOUSE_ENCRYPTION_KEYS is required"))?;
            let pool = db::connect_and_migrate(&config.database_url, 2).await?;
            let changed = reseal::reseal_all(&pool, keyring).await?;
            println!("{changed}");
            Ok(())
        }
    }
}
