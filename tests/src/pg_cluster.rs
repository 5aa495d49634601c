//! A throwaway PostgreSQL cluster of a test's own, for faults that need the real server gone
//! (`pg_ctl stop -m immediate`): the shared test server must never be stopped. PostgreSQL
//! refuses to run as root, so when the tests run as root the cluster runs as `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// `initdb` in a fresh temporary directory and start on a free port; `None` when the
    /// PostgreSQL server binaries are not installed.
    pub fn start() -> Option<PgCluster> {
        if !Path::new(BIN).join("pg_ctl").exists() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("gatehouse-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        if as_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PgCluster { dir, port };
        run(cluster
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(cluster.data()));
        cluster.pg_ctl("start");
        Some(cluster)
    }

    /// The `postgres` database of this cluster.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server the way a crash does: no shutdown checkpoint, clients cut.
    pub fn stop_immediate(&self) {
        run(self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data()));
    }

    /// Starts the server again (crash recovery) and waits until it accepts connections.
    pub fn restart(&self) {
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        run(self
            .command("pg_ctl")
            .args([action, "-w", "-l"])
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(options)
            .arg("-D")
            .arg(self.data()));
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = Path::new(BIN).join(program);
        if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
