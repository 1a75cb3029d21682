//! Discovery changes taken in batches: whatever is ready together.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use tokio_stream::Stream;

use crate::Change;

/// The most changes applied as one batch; the rest wait for the next. Bounds
/// how long the list goes unpublished behind a discovery source that is
/// always ready.
pub(crate) const MAX_BATCH: usize = 4096;

/// Waits for at least one change, then takes every change already ready
/// (at most [`MAX_BATCH`]) into `batch`. Returns whether the stream ended.
///
/// A stream may return `Pending` to yield to the scheduler (tokio's
/// cooperative budget) with more changes ready behind it, so after a
/// `Pending` the task yields once and looks again: the batch ends when a look
/// finds nothing new.
pub(crate) async fn next_batch(
    mut discovery: Pin<&mut (dyn Stream<Item = Change> + Send)>,
    batch: &mut Vec<Change>,
) -> bool {
    if take_ready(discovery.as_mut(), batch, true).await {
        return true;
    }
    while batch.len() < MAX_BATCH {
        tokio::task::yield_now().await;
        let before = batch.len();
        if take_ready(discovery.as_mut(), batch, false).await {
            return true;
        }
        if batch.len() == before {
            break;
        }
    }
    false
}

/// Takes the changes ready now into `batch` (waiting for one first if
/// `wait` and `batch` is empty), up to [`MAX_BATCH`]. Returns whether the
/// stream ended.
async fn take_ready(
    mut discovery: Pin<&mut (dyn Stream<Item = Change> + Send)>,
    batch: &mut Vec<Change>,
    wait: bool,
) -> bool {
    poll_fn(|cx| {
        while batch.len() < MAX_BATCH {
            match discovery.as_mut().poll_next(cx) {
                Poll::Ready(Some(change)) => batch.push(change),
                Poll::Ready(None) => return Poll::Ready(true),
                Poll::Pending if wait && batch.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(false),
            }
        }
        Poll::Ready(false)
    })
    .await
}

#[cfg(test)]
mod tests;
