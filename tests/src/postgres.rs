//! A PostgreSQL cluster of the caller's own, in a temporary folder, that can be restarted
//! without touching the machine's server. Uses the installed server binaries (`make test`'s
//! `stack.sh up postgres` installs them on a machine that lacks them).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

use crate::free_port;

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

fn server_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL server under /usr/lib/postgresql (run `make test` or `infra/dev/stack.sh up postgres` once)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    dirs.pop().context("no pg_ctl found")
}

impl PrivatePostgres {
    /// Initialises and starts a trust-auth cluster listening on 127.0.0.1 only.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = server_bin_dir()?;
        let dir = std::env::temp_dir().join(format!("brain-pg-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        std::fs::create_dir_all(&dir)?;
        // initdb refuses to run as root: run the server as the postgres user, which must own the folder.
        let as_postgres = Command::new("id").arg("-u").output().await?.stdout.starts_with(b"0\n");
        if as_postgres {
            Command::new("chown").args(["postgres:postgres", &dir.to_string_lossy()]).status().await?;
        }
        let pg = Self { port: free_port(), dir, bin, as_postgres };
        pg.run("initdb", &["-D", &pg.data(), "--auth=trust", "-U", "postgres", "--no-sync"]).await?;
        pg.pg_ctl("start").await?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// The server URL (database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).current_dir(Path::new("/")).output().await.with_context(|| format!("running {tool}"))?;
        anyhow::ensure!(output.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    }

    async fn pg_ctl(&self, action: &str) -> anyhow::Result<()> {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let log = self.dir.join("server.log").to_string_lossy().into_owned();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-m", "fast", "-w", action]).await
    }

    /// Stops the server (fast shutdown): PostgreSQL is down until `start_again`.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl("stop").await
    }

    pub async fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl("start").await
    }

    /// A fast restart: every open connection is dropped, as in a failover or a crash.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl("restart").await
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
