//! `duet check`: classify the schema changes in migration files. The library
//! (`duet_shadow::check`) returns the report as data; this file picks the inputs, renders the chosen
//! format and maps findings to the exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use duet_shadow::check::{self, output, CheckConfig, EngineVersion, Level};

use crate::backend_tls::BackendTls;
use crate::backend_url::BackendUrl;
use crate::control::connection::{connect_error_text, connect_url};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Source line with a caret, explanation and safer SQL.
    Human,
    /// The stable JSON contract (shadow/docs/check-json.md).
    Json,
    /// GitHub Actions workflow annotations.
    Github,
    /// SARIF 2.1.0.
    Sarif,
}

/// Options of `duet check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Migration files or directories (walked in migration-runner order).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// PostgreSQL version the migrations will run on (11–18, e.g. "15" or "14.3").
    #[arg(long)]
    pub engine_version: Option<EngineVersion>,
    /// Read the current schema and table sizes from this database instead of starting empty
    /// (a postgres:// URL takes libpq's TLS parameters, as `duet proxy --backend` does).
    #[arg(long, env = "DUET_CHECK_DATABASE_URL")]
    pub database: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Exit 1 when a finding at or above this level exists (info, warning, error).
    #[arg(long, value_parser = parse_level)]
    pub fail_on: Option<Level>,
    /// duet.toml to read `[check]` from (default: config/duet.toml when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Human format: also list statements without findings.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Reads the schema of `--database`. A URL duet's backend-URL parser accepts is connected the way
/// the proxy connects, so libpq's TLS parameters (`sslmode=verify-full`, `sslrootcert`, …) work
/// here too; any other connection string (key=value, parameters only tokio-postgres knows) goes
/// to tokio-postgres unencrypted, as before.
fn read_live_schema(url: &str) -> anyhow::Result<check::schema::Schema> {
    let Ok(parsed) = BackendUrl::parse(url) else {
        return Ok(check::live_schema::read_live_schema(url)?);
    };
    let tls = BackendTls::load(&parsed.ssl, &parsed.addr).context("--database")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let (client, connection) = connect_url(&parsed, tls.as_ref(), CONNECT_TIMEOUT)
            .await
            .map_err(|e| {
                anyhow::anyhow!("connecting to {}: {}", parsed.addr, connect_error_text(&e))
            })?;
        let driver = tokio::spawn(connection);
        let schema = check::live_schema::read_schema(&client).await;
        drop(client);
        let _ = driver.await;
        Ok(schema?)
    })
}

/// Time allowed to reach `--database`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| format!("{s:?} is not one of info, warning, error"))
}

/// Runs `duet check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config_path = args.config.clone().or_else(|| {
        let default = PathBuf::from("config/duet.toml");
        default.exists().then_some(default)
    });
    let mut config = match &config_path {
        Some(p) => CheckConfig::load(p)?,
        None => CheckConfig::default(),
    };
    if let Some(v) = args.engine_version {
        config.engine_version = v;
    }
    if let Some(l) = args.fail_on {
        config.fail_on = l;
    }
    let schema = match &args.database {
        Some(url) => read_live_schema(url).context("reading the live schema (--database)")?,
        None => check::schema::Schema::default(),
    };
    let sources = check::read_sources(&args.paths)?;
    let report = check::check_files(&sources, &config, schema)?;
    let text = match args.format {
        Format::Human => {
            let color = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            output::human::render(
                &report,
                output::human::HumanOptions {
                    color,
                    verbose: args.verbose,
                },
            )
        }
        Format::Json => output::json::render(&report),
        Format::Github => output::github::render(&report),
        Format::Sarif => output::sarif::render(&report),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(if report.count_at_least(config.fail_on) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(paths: Vec<PathBuf>, fail_on: Option<Level>) -> Args {
        Args {
            paths,
            engine_version: None,
            database: None,
            format: Format::Json,
            fail_on,
            config: Some(PathBuf::from("/nonexistent-duet-test.toml")),
            verbose: false,
        }
    }

    fn temp_file(name: &str, sql: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("duet-check-cli-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.sql"));
        let _ = std::fs::write(&path, sql);
        path
    }

    #[test]
    fn exit_codes_follow_fail_on() {
        let bad = temp_file("bad", "CREATE INDEX i ON t (a);");
        let mut a = args(vec![bad.clone()], None);
        a.config = None;
        assert_eq!(run(a).ok(), Some(ExitCode::from(1)));
        let ok = temp_file("ok", "SET lock_timeout = '1s';\nSELECT 1;");
        let mut a = args(vec![ok], Some(Level::Info));
        a.config = None;
        assert_eq!(run(a).ok(), Some(ExitCode::SUCCESS));
        // A missing config file given explicitly, or a missing input, is an error (exit 2 in main).
        assert!(run(args(vec![bad], None)).is_err());
        let mut a = args(vec![PathBuf::from("/nonexistent/dir")], None);
        a.config = None;
        assert!(run(a).is_err());
    }
}
