//! etcd's own HTTP JSON gateway (`POST <client-url>/v3/...`), so that a test
//! writes and reads values through etcd itself, as a Go service or
//! `etcdctl` would, and not through orca-lb's etcd client.
//!
//! Each request is one plain HTTP/1.0 exchange on a fresh connection (the
//! server answers without chunking and closes), bounded by
//! [`WAIT_LIMIT`](orca_lb_tests::WAIT_LIMIT). Keys and values go base64
//! encoded, 64-bit integers come back as JSON strings: the gateway's
//! protobuf-to-JSON mapping.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use orca_lb_tests::within;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A key as etcd stores it, read through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredKey {
    /// The key.
    pub(crate) key: String,
    /// The value, as text.
    pub(crate) value: String,
    /// The lease it is attached to, 0 for none.
    pub(crate) lease: i64,
}

/// The gateway of one etcd.
#[derive(Debug, Clone)]
pub(crate) struct Gateway {
    /// `127.0.0.1:PORT`, etcd's client port.
    host: String,
}

impl Gateway {
    /// The gateway on etcd's client URL (`http://127.0.0.1:PORT`).
    pub(crate) fn new(client_url: &str) -> Gateway {
        let host = client_url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an http:// client URL: {client_url}"))
            .trim_end_matches('/')
            .to_string();
        Gateway { host }
    }

    /// Writes `key` = `value`, under `lease` unless it is 0.
    pub(crate) async fn put(&self, key: &str, value: &str, lease: i64) {
        let mut body = json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) });
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        self.call("/v3/kv/put", body).await;
    }

    /// Deletes `key`.
    pub(crate) async fn delete(&self, key: &str) {
        self.call("/v3/kv/deleterange", json!({ "key": BASE64.encode(key) }))
            .await;
    }

    /// Grants a lease of `ttl_secs` seconds; returns its ID.
    pub(crate) async fn grant(&self, ttl_secs: u64) -> i64 {
        let reply = self
            .call("/v3/lease/grant", json!({ "TTL": ttl_secs.to_string() }))
            .await;
        let id = int(&reply["ID"]);
        assert!(id != 0, "lease grant answered no ID: {reply}");
        id
    }

    /// `key` as stored, if it exists.
    pub(crate) async fn get(&self, key: &str) -> Option<StoredKey> {
        let reply = self
            .call("/v3/kv/range", json!({ "key": BASE64.encode(key) }))
            .await;
        let mut kvs = stored_keys(&reply);
        assert!(kvs.len() <= 1, "one key read, several returned: {reply}");
        kvs.pop()
    }

    /// Every key that starts with `prefix`, in key order.
    pub(crate) async fn get_prefix(&self, prefix: &str) -> Vec<StoredKey> {
        let end = prefix_end(prefix.as_bytes());
        let reply = self
            .call(
                "/v3/kv/range",
                json!({ "key": BASE64.encode(prefix), "range_end": BASE64.encode(end) }),
            )
            .await;
        stored_keys(&reply)
    }

    /// One POST; the reply's JSON. Fails the test on anything but 200.
    async fn call(&self, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let exchange = async {
            let mut stream = TcpStream::connect(&self.host).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await?;
            Ok::<_, std::io::Error>(reply)
        };
        let reply = within(&format!("the gateway's reply to {path}"), exchange)
            .await
            .unwrap_or_else(|e| panic!("{path} on {}: {e}", self.host));
        let reply = String::from_utf8(reply).expect("a UTF-8 reply");
        let (head, json) = reply
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{path}: not an HTTP reply: {reply:?}"));
        let status = head.lines().next().unwrap_or_default();
        assert!(
            status.split_whitespace().nth(1) == Some("200"),
            "{path} {body}: {status}\n{json}"
        );
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{path}: {e}: {json:?}"))
    }
}

/// The `kvs` of a range reply (absent when nothing matched).
fn stored_keys(reply: &Value) -> Vec<StoredKey> {
    let Some(kvs) = reply.get("kvs") else {
        return Vec::new();
    };
    kvs.as_array()
        .unwrap_or_else(|| panic!("kvs is not an array: {reply}"))
        .iter()
        .map(|kv| StoredKey {
            key: text(&kv["key"]),
            value: kv.get("value").map_or_else(String::new, text),
            lease: kv.get("lease").map_or(0, int),
        })
        .collect()
}

/// A base64 field decoded to text.
fn text(field: &Value) -> String {
    let encoded = field
        .as_str()
        .unwrap_or_else(|| panic!("not a base64 string: {field}"));
    let bytes = BASE64
        .decode(encoded)
        .unwrap_or_else(|e| panic!("{encoded:?}: {e}"));
    String::from_utf8(bytes).expect("UTF-8 text")
}

/// A 64-bit integer: a JSON string, or a number.
fn int(field: &Value) -> i64 {
    match field {
        Value::String(s) => s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}")),
        Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("{n} is not an i64")),
        other => panic!("not an integer: {other}"),
    }
}

/// The end of the range of keys starting with `prefix` (etcd's convention:
/// the last byte below 0xff incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
