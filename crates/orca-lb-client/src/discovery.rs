//! Where endpoints come from: a stream of insertions and removals.

use std::pin::Pin;
use std::sync::{Arc, Weak};

use http::Uri;
use orca_lb_core::Zone;
use tokio_stream::Stream;

use crate::BuildError;
use crate::endpoint::Endpoint;
use crate::shared::Shared;

/// A change to the set of endpoints, as tower and tonic discovery express it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// An endpoint appeared: its key (unique within the set) and its URI
    /// (`http://host:port`). Inserting a key already present is ignored.
    Insert(String, Uri),
    /// As [`Insert`](Self::Insert), for an endpoint in a zone (see
    /// [`BalancerConfig::locality`](crate::BalancerConfig::locality)). To
    /// move an endpoint to another zone, remove it and insert it again.
    InsertInZone(String, Uri, Zone),
    /// The endpoint with this key went away. Calls in flight on it finish;
    /// no new call is sent to it.
    Remove(String),
}

/// Changes that insert every URI of a fixed list, keyed by the URI itself.
pub fn static_list<I, S>(uris: I) -> Result<Vec<Change>, BuildError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    uris.into_iter()
        .map(|s| {
            let s = s.as_ref();
            Ok(Change::Insert(s.to_string(), parse_uri(s)?))
        })
        .collect()
}

/// Changes that insert every URI of a fixed list, each in its zone, keyed
/// by the URI itself. An unparsable URI or an invalid zone name is refused,
/// naming the URI.
///
/// ```
/// use orca_lb_client::{Change, static_zoned_list};
///
/// let changes = static_zoned_list([
///     ("http://10.0.1.1:50051", "us-east-1a"),
///     ("http://10.0.2.1:50051", "us-east-1b"),
/// ])?;
/// assert!(matches!(&changes[1], Change::InsertInZone(_, _, zone) if zone.as_str() == "us-east-1b"));
/// assert!(static_zoned_list([("http://10.0.1.1:50051", "")]).is_err());
/// # Ok::<(), orca_lb_client::BuildError>(())
/// ```
pub fn static_zoned_list<I, S, Z>(entries: I) -> Result<Vec<Change>, BuildError>
where
    I: IntoIterator<Item = (S, Z)>,
    S: AsRef<str>,
    Z: AsRef<str>,
{
    entries
        .into_iter()
        .map(|(s, z)| {
            let s = s.as_ref();
            let uri = parse_uri(s)?;
            let zone = Zone::new(z).map_err(|why| BuildError::InvalidZone {
                uri: s.to_string(),
                why,
            })?;
            Ok(Change::InsertInZone(s.to_string(), uri, zone))
        })
        .collect()
}

/// `s` as an endpoint URI, which must have a scheme and an authority.
fn parse_uri(s: &str) -> Result<Uri, BuildError> {
    let uri: Uri = s
        .parse()
        .map_err(|e: http::uri::InvalidUri| BuildError::InvalidUri {
            uri: s.to_string(),
            why: e.to_string(),
        })?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(BuildError::InvalidUri {
            uri: s.to_string(),
            why: "expected scheme://host:port".to_string(),
        });
    }
    Ok(uri)
}

/// Applies changes from `discovery` until it ends or the balancer is dropped
/// (at once, even if discovery never yields again). Changes that are ready
/// together are applied as one batch and published once.
pub(crate) async fn run(
    shared: Weak<Shared>,
    mut discovery: Pin<Box<dyn Stream<Item = Change> + Send>>,
) {
    let Some(mut dropped) = shared.upgrade().map(|s| s.dropped()) else {
        return;
    };
    let mut batch = Vec::new();
    loop {
        let ended = tokio::select! {
            ended = crate::change_batch::next_batch(discovery.as_mut(), &mut batch) => ended,
            // Never sent on: resolves only when the sender is dropped.
            _ = dropped.changed() => return,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.set.begin_batch();
        for change in batch.drain(..) {
            apply(&shared, change);
        }
        shared.set.end_batch();
        if ended {
            return;
        }
    }
}

pub(crate) fn apply(shared: &Arc<Shared>, change: Change) {
    let now = tokio::time::Instant::now().into_std();
    match change {
        Change::Insert(key, uri) => insert(shared, key, uri, None, now),
        Change::InsertInZone(key, uri, zone) => insert(shared, key, uri, Some(zone), now),
        Change::Remove(key) => {
            if shared.set.remove(&key).is_some() {
                tracing::info!(target_name = %shared.config.target, endpoint = %key, "endpoint removed; draining");
            }
        }
    }
}

/// Adds an endpoint, with its out-of-band and health streams if configured.
fn insert(
    shared: &Arc<Shared>,
    key: String,
    uri: Uri,
    zone: Option<Zone>,
    now: std::time::Instant,
) {
    let channel = match shared
        .config
        .endpoint
        .connect_lazy(&uri, shared.config.connect_timeout)
    {
        Ok(channel) => channel,
        Err(e) => {
            tracing::warn!(target_name = %shared.config.target, endpoint = %key, error = %e, "endpoint left out: its connection cannot be made");
            return;
        }
    };
    let ep = Arc::new(Endpoint::new(
        key.clone(),
        uri,
        zone,
        channel,
        &shared.config,
        shared.origin,
        now,
    ));
    if shared.set.insert(ep.clone()) {
        tracing::info!(target_name = %shared.config.target, endpoint = %key, "endpoint added");
        if let Some(period) = shared.config.oob_interval {
            let task = tokio::spawn(crate::oob::run(
                Arc::downgrade(shared),
                Arc::downgrade(&ep),
                period,
            ));
            ep.set_oob_task(task);
        }
        if let Some(check) = &shared.config.health_check {
            let task = tokio::spawn(crate::health_watch::run(
                Arc::downgrade(shared),
                Arc::downgrade(&ep),
                check.service.clone(),
            ));
            ep.set_health_task(task);
        }
    } else {
        tracing::debug!(target_name = %shared.config.target, endpoint = %key, "endpoint already present");
    }
}
