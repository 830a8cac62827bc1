//! Running a request under the faults that fired on it, the same way in every simulator.

use std::future::Future;

use axum::{extract::Request, http::Extensions, middleware::Next, response::Response};

use crate::faults::Hit;

/// Response marker: an injected fault fired on this request (the ledgers show it as `injected`).
#[derive(Debug, Clone, Copy)]
pub struct Injected;

/// Waits the summed latency, then answers with the fault (`render` turns its answer into the
/// simulator's own error, or holds the request) or lets the request through. With `afterEffect`
/// the request runs first (its effect happens) and the fault's answer replaces its response;
/// `carry` moves markers of the real response onto the lost one ([`keep`] a marker type, or
/// [`nothing`]), so the ledger can still name the effect.
pub async fn run_with<A, F>(
    hit: Hit<A>,
    request: Request,
    next: Next,
    render: impl FnOnce(A) -> F,
    carry: fn(&Extensions, &mut Extensions),
) -> Response
where
    F: Future<Output = Response>,
{
    let mut response = if hit.after_effect {
        let done = next.run(request).await;
        tokio::time::sleep(hit.latency).await;
        match hit.answer {
            Some(answer) => {
                let mut lost = render(answer).await;
                carry(done.extensions(), lost.extensions_mut());
                lost
            }
            None => done,
        }
    } else {
        if !hit.latency.is_zero() {
            tokio::time::sleep(hit.latency).await;
        }
        match hit.answer {
            Some(answer) => render(answer).await,
            None => next.run(request).await,
        }
    };
    response.extensions_mut().insert(Injected);
    response
}

/// Carries the real response's marker of type `M` (e.g. what the request changed).
pub fn keep<M: Clone + Send + Sync + 'static>(real: &Extensions, lost: &mut Extensions) {
    if let Some(marker) = real.get::<M>() {
        lost.insert(marker.clone());
    }
}

/// Carries nothing: the lost response is the fault's answer alone.
pub fn nothing(_real: &Extensions, _lost: &mut Extensions) {}
