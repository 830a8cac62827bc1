//! The one cancellation token a process shuts down with.

use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// Runs `parts` of one process together until all have ended. The first to end, with an error or
/// not, cancels `shutdown`, so the others stop too and the process exits (and is restarted)
/// whole. Returns the first error, if any.
pub async fn run_together(shutdown: &CancellationToken, parts: Vec<futures::future::BoxFuture<'_, anyhow::Result<()>>>) -> anyhow::Result<()> {
    let ended = parts.into_iter().map(|part| async move {
        let result = part.await;
        shutdown.cancel();
        result
    });
    futures::future::join_all(ended).await.into_iter().collect()
}
