//! What discovery knows: the valid endpoint records under the prefix, and the
//! changes that bring a balancer from one view to the next.
//!
//! Invariant: the keys a balancer was told about (inserts minus removes) are
//! exactly the keys of `endpoints`, each with the address recorded there.

use std::collections::BTreeMap;

use orca_lb_client::Change;

use super::malformed_log::MalformedValue;
use crate::pb::mvccpb::KeyValue;
use crate::record::EndpointRecord;
use crate::value_format::ValueFormat;

#[derive(Debug, Default)]
pub(crate) struct Table {
    endpoints: BTreeMap<String, EndpointRecord>,
    /// Keys whose value is malformed, with the revision already counted, so
    /// one bad value is counted once however often it is read again.
    malformed: BTreeMap<Vec<u8>, i64>,
}

/// The effect of applying events or a fresh read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) changes: Vec<Change>,
    /// Malformed values seen for the first time.
    pub(crate) malformed: Vec<MalformedValue>,
}

impl Table {
    pub(crate) fn endpoints(&self) -> &BTreeMap<String, EndpointRecord> {
        &self.endpoints
    }

    /// A key was written; its value is read as `format`.
    pub(crate) fn put(
        &mut self,
        kv: &KeyValue,
        format: ValueFormat,
        zone_key: &str,
        out: &mut Applied,
    ) {
        match parse(kv, format, zone_key) {
            Ok((key, record)) => {
                self.malformed.remove(&kv.key);
                let insert = insertion(&key, &record);
                match self.endpoints.insert(key.clone(), record) {
                    None => out.changes.push(insert),
                    // Metadata changed only: nothing for the balancer.
                    Some(old) if same_endpoint(&old, &self.endpoints[&key]) => {}
                    Some(_) => {
                        out.changes.push(Change::Remove(key));
                        out.changes.push(insert);
                    }
                }
            }
            Err(why) => {
                self.count_malformed(kv, &why, out);
                // The key no longer describes an endpoint.
                if let Ok(key) = std::str::from_utf8(&kv.key)
                    && self.endpoints.remove(key).is_some()
                {
                    out.changes.push(Change::Remove(key.to_string()));
                }
            }
        }
    }

    /// A key was deleted (or expired with its lease).
    pub(crate) fn delete(&mut self, key: &[u8], out: &mut Applied) {
        self.malformed.remove(key);
        if let Ok(key) = std::str::from_utf8(key)
            && self.endpoints.remove(key).is_some()
        {
            out.changes.push(Change::Remove(key.to_string()));
        }
    }

    /// Replaces everything with a fresh read of the prefix, emitting only the
    /// differences: new keys first, then keys whose address changed (each
    /// removed and inserted again), then keys that are gone. A balancer
    /// applying them in order never sees fewer endpoints than in both views,
    /// even when every address changed at once. A read that finds the prefix
    /// empty removes every endpoint: the fleet is gone (or deregistered), and
    /// calls to it fail either way.
    pub(crate) fn replace(
        &mut self,
        kvs: &[KeyValue],
        format: ValueFormat,
        zone_key: &str,
    ) -> Applied {
        let mut out = Applied::default();
        let mut fresh = BTreeMap::new();
        let mut malformed = BTreeMap::new();
        for kv in kvs {
            match parse(kv, format, zone_key) {
                Ok((key, record)) => {
                    fresh.insert(key, record);
                }
                Err(why) => {
                    self.count_malformed(kv, &why, &mut out);
                    malformed.insert(kv.key.clone(), kv.mod_revision);
                }
            }
        }
        for (key, new) in &fresh {
            if !self.endpoints.contains_key(key) {
                out.changes.push(insertion(key, new));
            }
        }
        for (key, old) in &self.endpoints {
            if let Some(new) = fresh.get(key)
                && !same_endpoint(old, new)
            {
                out.changes.push(Change::Remove(key.clone()));
                out.changes.push(insertion(key, new));
            }
        }
        for key in self.endpoints.keys() {
            if !fresh.contains_key(key) {
                out.changes.push(Change::Remove(key.clone()));
            }
        }
        self.endpoints = fresh;
        self.malformed = malformed;
        out
    }

    /// Notes a malformed value, unless this revision of it was seen already.
    fn count_malformed(&mut self, kv: &KeyValue, why: &str, out: &mut Applied) {
        if self.malformed.insert(kv.key.clone(), kv.mod_revision) != Some(kv.mod_revision) {
            out.malformed.push(MalformedValue {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                revision: kv.mod_revision,
                why: why.to_string(),
            });
        }
    }
}

fn parse(
    kv: &KeyValue,
    format: ValueFormat,
    zone_key: &str,
) -> Result<(String, EndpointRecord), String> {
    let key = std::str::from_utf8(&kv.key).map_err(|_| "key is not UTF-8".to_string())?;
    let record = format
        .decode_zoned(&kv.value, zone_key)
        .map_err(|e| e.to_string())?;
    Ok((key.to_string(), record))
}

/// Whether two records of a key are the same endpoint for the balancer: the
/// same address in the same zone (other metadata does not matter to it).
fn same_endpoint(a: &EndpointRecord, b: &EndpointRecord) -> bool {
    a.addr == b.addr && a.zone == b.zone
}

/// The change that inserts `record` under `key`: in its zone if it has one
/// (checked by [`ValueFormat::decode_zoned`]).
fn insertion(key: &str, record: &EndpointRecord) -> Change {
    let zone = record
        .zone
        .as_deref()
        .and_then(|z| orca_lb_client::Zone::new(z).ok());
    match zone {
        Some(zone) => Change::InsertInZone(key.to_string(), record.addr.clone(), zone),
        None => Change::Insert(key.to_string(), record.addr.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
            ..Default::default()
        }
    }

    /// Applies a put of `value` at `key` (revision `rev`), read in any
    /// format, with the zone under `zone`.
    fn put(t: &mut Table, key: &str, value: &str, rev: i64, out: &mut Applied) {
        t.put(&kv(key, value, rev), ValueFormat::Auto, "zone", out);
    }

    /// A record whose metadata (its weight) is named by `tag`.
    fn rec(port: u16, tag: &str) -> String {
        let weight: u32 = tag.bytes().map(u32::from).sum();
        format!(r#"{{"v":1,"addr":"http://127.0.0.1:{port}","weight":{weight}}}"#)
    }

    fn insert(key: &str, port: u16) -> Change {
        Change::Insert(
            key.into(),
            format!("http://127.0.0.1:{port}").parse().unwrap(),
        )
    }

    fn remove(key: &str) -> Change {
        Change::Remove(key.into())
    }

    #[test]
    fn zones_are_inserted_with_their_endpoint_and_a_zone_change_reinserts() {
        let zoned = |port: u16, zone: &str| {
            format!(r#"{{"v":1,"addr":"http://127.0.0.1:{port}","zone":"{zone}"}}"#)
        };
        let in_zone = |key: &str, port: u16, zone: &str| {
            Change::InsertInZone(
                key.into(),
                format!("http://127.0.0.1:{port}").parse().unwrap(),
                orca_lb_client::Zone::new(zone).unwrap(),
            )
        };
        let mut t = Table::default();
        let mut out = Applied::default();
        put(&mut t, "/p/a", &zoned(1, "x"), 2, &mut out);
        put(&mut t, "/p/a", &zoned(1, "y"), 3, &mut out);
        // Go's naming form, the zone under a configured metadata key.
        let go = r#"{"Op":0,"Addr":"127.0.0.1:2","Metadata":{"az":"z"}}"#;
        t.put(&kv("/p/b", go, 4), ValueFormat::Auto, "az", &mut out);
        assert_eq!(
            out.changes,
            vec![
                in_zone("/p/a", 1, "x"),
                remove("/p/a"),
                in_zone("/p/a", 1, "y"),
                in_zone("/p/b", 2, "z"),
            ]
        );
        // A bad zone is a malformed value: counted, and the key removed.
        let mut out = Applied::default();
        put(&mut t, "/p/a", &zoned(1, "bad\\u001b"), 5, &mut out);
        let bad_type = r#"{"Op":0,"Addr":"127.0.0.1:2","Metadata":{"az":7}}"#;
        t.put(&kv("/p/b", bad_type, 6), ValueFormat::Auto, "az", &mut out);
        assert_eq!(out.changes, vec![remove("/p/a"), remove("/p/b")]);
        assert_eq!(out.malformed.len(), 2);
        assert!(
            out.malformed[0].why.contains("invalid zone"),
            "{:?}",
            out.malformed
        );
        assert!(
            out.malformed[1].why.contains("not a string"),
            "{:?}",
            out.malformed
        );
    }

    #[test]
    fn events_insert_update_and_remove() {
        let mut t = Table::default();
        let mut out = Applied::default();
        put(&mut t, "/p/a", &rec(1, "x"), 2, &mut out);
        put(&mut t, "/p/a", &rec(1, "y"), 3, &mut out); // metadata only
        put(&mut t, "/p/a", &rec(2, "y"), 4, &mut out); // new address
        t.delete(b"/p/a", &mut out);
        t.delete(b"/p/unknown", &mut out);
        assert_eq!(
            out.changes,
            vec![
                insert("/p/a", 1),
                remove("/p/a"),
                insert("/p/a", 2),
                remove("/p/a")
            ]
        );
        assert!(out.malformed.is_empty());
        assert!(t.endpoints().is_empty());
    }

    #[test]
    fn a_value_turning_malformed_removes_its_endpoint_and_counts_once() {
        let mut t = Table::default();
        let mut out = Applied::default();
        put(&mut t, "/p/a", &rec(1, "x"), 2, &mut out);
        put(&mut t, "/p/a", "garbage", 3, &mut out);
        assert_eq!(out.changes, vec![insert("/p/a", 1), remove("/p/a")]);
        assert_eq!(out.malformed.len(), 1);
        // The same bad value read again (a relist) is not counted again.
        let again = t.replace(&[kv("/p/a", "garbage", 3)], ValueFormat::Auto, "zone");
        assert_eq!(again, Applied::default());
        // A new bad value is.
        let mut out = Applied::default();
        t.put(&kv("/p/a", "{}", 5), ValueFormat::Auto, "zone", &mut out);
        assert_eq!(out.malformed.len(), 1);
        // Fixed: back in.
        put(&mut t, "/p/a", &rec(1, "x"), 6, &mut out);
        assert_eq!(out.changes, vec![insert("/p/a", 1)]);
    }

    #[test]
    fn a_fresh_read_emits_only_the_differences() {
        let mut t = Table::default();
        let first = t.replace(
            &[
                kv("/p/a", &rec(1, "x"), 2),
                kv("/p/b", &rec(2, "x"), 3),
                kv("/p/c", &rec(3, "x"), 4),
            ],
            ValueFormat::Auto,
            "zone",
        );
        assert_eq!(first.changes.len(), 3);
        let next = t.replace(
            &[
                kv("/p/a", &rec(1, "x"), 2),  // unchanged
                kv("/p/c", &rec(3, "z"), 9),  // metadata only
                kv("/p/d", &rec(4, "x"), 10), // new
                kv("/p/e", "nope", 11),       // malformed
            ],
            ValueFormat::Auto,
            "zone",
        );
        assert_eq!(next.changes, vec![insert("/p/d", 4), remove("/p/b")]);
        assert_eq!(next.malformed.len(), 1);
        assert_eq!(t.endpoints()["/p/c"].weight, Some(u32::from(b'z')));
        assert_eq!(
            t.endpoints().keys().collect::<Vec<_>>(),
            ["/p/a", "/p/c", "/p/d"]
        );
    }

    #[test]
    fn a_fresh_read_inserts_before_it_removes() {
        let mut t = Table::default();
        t.replace(
            &[kv("/p/a", &rec(1, "x"), 2), kv("/p/b", &rec(2, "x"), 3)],
            ValueFormat::Auto,
            "zone",
        );
        // Every endpoint replaced at once: the new ones come in first.
        let rotated = t.replace(
            &[
                kv("/p/b", &rec(5, "x"), 7),
                kv("/p/c", &rec(3, "x"), 8),
                kv("/p/d", &rec(4, "x"), 9),
            ],
            ValueFormat::Auto,
            "zone",
        );
        assert_eq!(
            rotated.changes,
            vec![
                insert("/p/c", 3),
                insert("/p/d", 4),
                remove("/p/b"),
                insert("/p/b", 5),
                remove("/p/a"),
            ]
        );
        // Applied in order, the set never shrinks below the smaller view.
        let mut live = std::collections::BTreeSet::from(["/p/a", "/p/b"]);
        for change in &rotated.changes {
            match change {
                Change::Insert(k, _) | Change::InsertInZone(k, _, _) => live.insert(k.as_str()),
                Change::Remove(k) => live.remove(k.as_str()),
                other => panic!("unexpected {other:?}"),
            };
            assert!(live.len() >= 2, "{live:?} after {change:?}");
        }
        // A fleet that is really gone is removed.
        let gone = t.replace(&[], ValueFormat::Auto, "zone");
        assert_eq!(gone.changes.len(), 3);
        assert!(t.endpoints().is_empty());
    }

    #[test]
    fn values_are_read_in_the_format_asked_for() {
        let bare = kv("/p/a", "127.0.0.1:1", 2);
        let own = kv("/p/b", &rec(2, "x"), 3);
        let go = kv(
            "/p/c",
            r#"{"Op":0,"Addr":"127.0.0.1:3","Metadata":{"k":1}}"#,
            4,
        );
        let all = [bare, own, go];
        let read = |format| {
            let mut t = Table::default();
            let out = t.replace(&all, format, "zone");
            let keys: Vec<String> = t.endpoints().keys().cloned().collect();
            (keys, out.malformed.len())
        };
        assert_eq!(
            read(ValueFormat::Auto),
            (vec!["/p/a".into(), "/p/b".into(), "/p/c".into()], 0)
        );
        assert_eq!(read(ValueFormat::OrcaLb), (vec!["/p/b".into()], 2));
        assert_eq!(read(ValueFormat::BareAddress), (vec!["/p/a".into()], 2));
        assert_eq!(read(ValueFormat::GoNaming), (vec!["/p/c".into()], 2));
        let mut t = Table::default();
        t.replace(&all, ValueFormat::Auto, "zone");
        assert_eq!(
            t.endpoints()["/p/c"].metadata.as_deref(),
            Some(r#"{"k":1}"#)
        );
        assert_eq!(t.endpoints()["/p/a"].addr, "http://127.0.0.1:1");
    }
}
