//! `ngram-ids dashboard`: a local web page and Prometheus `/metrics` over what ngram-ids
//! already writes (issue 12): the supervisors' status files, the profile store (read for a
//! moment at a time) and the alert log. No database of its own. docs/dashboard.md.

mod alerts;
mod auth;
mod containers;
mod metrics;
mod page;
mod profiles;
mod server;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use ngram_profiler::alert;
use ngram_profiler::store::StoreError;

use self::auth::{parse_listen, Access, DEFAULT_LISTEN};
use self::containers::DEFAULT_STATE_ROOT;
use super::opts::DbArg;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address and port to serve on. Any address but loopback needs --token.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// A secret every request must carry (header `Authorization: Bearer TOKEN`, or
    /// `?token=TOKEN` in the page's address). Required off loopback.
    #[arg(long, env = auth::TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// A runtime state root holding the containers' state directories (dockerd's `--root` of
    /// the runtime). Repeat it for several.
    #[arg(long = "state-root", value_name = "DIR", default_value = DEFAULT_STATE_ROOT)]
    pub state_roots: Vec<PathBuf>,
    /// The alert log (its rotated files FILE.1 … are read too).
    #[arg(long, value_name = "FILE", env = "NGRAM_IDS_ALERTS", default_value = alert::DEFAULT_LOG)]
    pub alerts: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
}

/// `ngram-ids dashboard`: check what it reads, then serve until killed.
pub(crate) fn run(args: &DashboardArgs) -> Result<ExitCode> {
    let access = Access::new(args.listen, args.token.clone())?;
    let mut cache = profiles::Cache::new(args.db.db.clone());
    match cache.refresh() {
        Ok(()) | Err(StoreError::Busy { .. }) => {}
        Err(e) => {
            return Err(anyhow!(
                "{e} (the dashboard reads it; run it as root or give --db DIR)"
            ))
        }
    }
    if let Err(e) = std::fs::File::open(&args.alerts) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(anyhow!(
                "cannot read alert log {}: {e} (run the dashboard as root or give --alerts FILE)",
                args.alerts.display()
            ));
        }
    }
    let feed = alerts::Feed::new();
    feed.follow(args.alerts.clone())
        .context("cannot start reading the alert log")?;
    let app = Arc::new(server::App {
        access,
        state_roots: args.state_roots.clone(),
        rates: Mutex::new(containers::Rates::default()),
        profiles: Arc::new(Mutex::new(cache)),
        feed,
        alerts: args.alerts.clone(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the dashboard's runtime")?;
    rt.block_on(serve(args.listen, app))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(listen: SocketAddr, app: Arc<server::App>) -> Result<()> {
    // A page that goes away mid-answer must not kill the server: catching SIGPIPE (the
    // offline tools restore its default) leaves a write to a closed socket an EPIPE error.
    let _sigpipe = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe())
        .context("cannot catch SIGPIPE")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow!("cannot listen on {listen}: {e} (give another --listen ADDR:PORT)"))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let token = if app.access.has_token() {
        "?token=TOKEN"
    } else {
        ""
    };
    // The first line says where (with --listen …:0, the port the system chose).
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ngram-ids dashboard on http://{local}/{token} (metrics: http://{local}/metrics)"
    )?;
    out.flush()?;
    drop(out);
    axum::serve(listener, server::router(app))
        .await
        .context("the dashboard's server stopped")
}
