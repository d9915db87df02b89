//! A minimal client for etcd's JSON gRPC gateway (etcd 3.4: `/v3/kv/...`),
//! over one HTTP/1.1 keep-alive connection that carries one request at a time.
//!
//! The gateway speaks protobuf-JSON: keys and values are base64, 64-bit
//! integers are decimal strings, field names are the proto names
//! (`mod_revision`, `request_put`), and fields at their default value
//! (`succeeded: false`, empty lists) are left out of responses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// The port etcd listens on for clients when a URL names none.
const DEFAULT_PORT: u16 = 2379;

/// Why a request failed. Any of these leaves the outcome of a write unknown
/// (the request may have been applied before the failure), and the caller
/// drops the connection and opens a new one.
#[derive(Debug)]
pub enum Error {
    /// The TCP connection or the HTTP handshake failed.
    Connect(String),
    /// The connection failed while the request or its response was in flight.
    Http(hyper::Error),
    /// No complete response within the request timeout.
    Timeout(Duration),
    /// The gateway answered with a non-2xx status (the start of the body).
    Status(u16, String),
    /// The response was not what the gateway documents.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(reason) => write!(f, "connect: {reason}"),
            Error::Http(error) => write!(f, "http: {error}"),
            Error::Timeout(limit) => write!(f, "no response within {} ms", limit.as_millis()),
            Error::Status(status, body) => write!(f, "status {status}: {body}"),
            Error::Protocol(reason) => write!(f, "unexpected response: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// One etcd member's client URL, e.g. `http://127.0.0.1:2379`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The URL as given, for messages.
    pub url: String,
    /// `host:port`, both the address to connect to and the `Host` header.
    authority: String,
}

impl Endpoint {
    /// Parses `http://host[:port]` or `host[:port]`. TLS is not supported.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: not a URL: {e}"))?;
        if let Some(scheme) = uri.scheme_str() {
            if scheme != "http" {
                return Err(format!("{url}: only http:// endpoints are supported"));
            }
        }
        let authority = uri.authority().ok_or_else(|| format!("{url}: no host"))?;
        let port = authority.port_u16().unwrap_or(DEFAULT_PORT);
        Ok(Endpoint { url: url.to_string(), authority: format!("{}:{port}", authority.host()) })
    }
}

/// A connection to one member of a cluster that moves on to the next member
/// after a failed request. Any member serves any request (followers forward
/// writes to the leader), so losing one member loses no work.
pub struct Connection {
    endpoints: Arc<[Endpoint]>,
    current: usize,
    client: Option<Client>,
    timeout: Duration,
}

impl Connection {
    /// Starts with `endpoints[first % len]`; connects on first use.
    pub fn new(endpoints: Arc<[Endpoint]>, first: usize, timeout: Duration) -> Connection {
        let current = first % endpoints.len().max(1);
        Connection { endpoints, current, client: None, timeout }
    }

    /// The member requests go to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[self.current]
    }

    /// The open connection, opened now if there is none.
    pub async fn client(&mut self) -> Result<&mut Client, Error> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.endpoints[self.current], self.timeout).await?);
        }
        self.client.as_mut().ok_or_else(|| Error::Connect("no connection".into()))
    }

    /// After a failed request: drops the connection, whose state is unknown,
    /// and moves on to the next member.
    pub fn failed(&mut self) {
        self.client = None;
        self.current = (self.current + 1) % self.endpoints.len();
    }
}

/// A key's current state, as a range returns it.
#[derive(Clone, Debug)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// The outcome of a compare-and-swap transaction.
#[derive(Debug)]
pub enum Cas {
    /// The compare held and the put was applied at this store revision,
    /// which is now the key's mod revision.
    Swapped { revision: i64 },
    /// The compare failed; the key as it is now (`None`: it does not exist).
    Conflict { current: Option<KeyValue> },
}

/// One page of a range read.
#[derive(Debug)]
pub struct Page {
    pub kvs: Vec<KeyValue>,
    /// More keys are in the range beyond this page's limit.
    pub more: bool,
}

/// One keep-alive connection to one member.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    timeout: Duration,
}

impl Client {
    /// Opens a connection; `timeout` bounds the connect and each request.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Client, Error> {
        let handshake = async {
            let stream = TcpStream::connect(&endpoint.authority).await.map_err(|e| Error::Connect(e.to_string()))?;
            stream.set_nodelay(true).map_err(|e| Error::Connect(e.to_string()))?;
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| Error::Connect(e.to_string()))
        };
        let (sender, connection) = tokio::time::timeout(timeout, handshake).await.map_err(|_| Error::Timeout(timeout))??;
        // The connection task ends when the peer closes or the `Client` is
        // dropped. Its error, if any, is also returned to the request in
        // flight (or the next one), which is where it is reported.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Client { sender, authority: endpoint.authority.clone(), timeout })
    }

    /// `PUT key = value`; returns the store revision it was applied at.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<i64, Error> {
        let response = self.post("/v3/kv/put", json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) })).await?;
        header_revision(&response)
    }

    /// One transaction: if `key`'s mod revision equals `mod_revision`, put
    /// `value`; otherwise read `key`.
    pub async fn compare_and_swap(&mut self, key: &[u8], mod_revision: i64, value: &[u8]) -> Result<Cas, Error> {
        let key = BASE64.encode(key);
        let request = json!({
            "compare": [{
                "key": key,
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": mod_revision.to_string(),
            }],
            "success": [{ "request_put": { "key": key, "value": BASE64.encode(value) } }],
            "failure": [{ "request_range": { "key": key } }],
        });
        let response = self.post("/v3/kv/txn", request).await?;
        if response.get("succeeded").and_then(Value::as_bool).unwrap_or(false) {
            return Ok(Cas::Swapped { revision: header_revision(&response)? });
        }
        let range = response
            .get("responses")
            .and_then(|responses| responses.get(0))
            .and_then(|first| first.get("response_range"))
            .ok_or_else(|| Error::Protocol("a failed transaction without its range response".into()))?;
        let current = key_values(range)?.into_iter().next();
        Ok(Cas::Conflict { current })
    }

    /// Keys in `[start, end)` in key order, at most `limit` of them
    /// (linearizable read).
    pub async fn range(&mut self, start: &[u8], end: &[u8], limit: i64) -> Result<Page, Error> {
        let request = json!({
            "key": BASE64.encode(start),
            "range_end": BASE64.encode(end),
            "limit": limit.to_string(),
        });
        let response = self.post("/v3/kv/range", request).await?;
        let more = response.get("more").and_then(Value::as_bool).unwrap_or(false);
        Ok(Page { kvs: key_values(&response)?, more })
    }

    /// Sends one JSON request and returns the decoded JSON response.
    async fn post(&mut self, path: &'static str, body: Value) -> Result<Value, Error> {
        let body = serde_json::to_vec(&body).map_err(|e| Error::Protocol(format!("encoding the request: {e}")))?;
        let request = Request::post(path)
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Protocol(format!("building the request: {e}")))?;
        let timeout = self.timeout;
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await.map_err(Error::Http)?;
            let response = sender.send_request(request).await.map_err(Error::Http)?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(Error::Http)?.to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange).await.map_err(|_| Error::Timeout(timeout))??;
        if !status.is_success() {
            let start = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(Error::Status(status.as_u16(), start));
        }
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("not JSON: {e}")))
    }
}

/// `header.revision` of a response.
fn header_revision(response: &Value) -> Result<i64, Error> {
    response
        .get("header")
        .and_then(|header| header.get("revision"))
        .and_then(int)
        .ok_or_else(|| Error::Protocol("no header.revision".into()))
}

/// The `kvs` of a range response (absent when empty).
fn key_values(range: &Value) -> Result<Vec<KeyValue>, Error> {
    let Some(kvs) = range.get("kvs") else { return Ok(Vec::new()) };
    let kvs = kvs.as_array().ok_or_else(|| Error::Protocol("kvs is not a list".into()))?;
    kvs.iter()
        .map(|kv| {
            let bytes = |field: &str| -> Result<Vec<u8>, Error> {
                // An empty value is a default, and so left out.
                match kv.get(field).and_then(Value::as_str) {
                    None => Ok(Vec::new()),
                    Some(text) => BASE64.decode(text).map_err(|e| Error::Protocol(format!("{field} is not base64: {e}"))),
                }
            };
            let mod_revision = kv.get("mod_revision").and_then(int).ok_or_else(|| Error::Protocol("a key without mod_revision".into()))?;
            Ok(KeyValue { key: bytes("key")?, value: bytes("value")?, mod_revision })
        })
        .collect()
}

/// A protobuf-JSON int64: a decimal string, or (leniently) a JSON number.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => text.parse().ok(),
        other => other.as_i64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        assert_eq!(Endpoint::parse("http://127.0.0.1:23791").map(|e| e.authority), Ok("127.0.0.1:23791".to_string()));
        assert_eq!(Endpoint::parse("localhost").map(|e| e.authority), Ok("localhost:2379".to_string()));
        assert!(Endpoint::parse("https://127.0.0.1:2379").is_err());
    }

    #[test]
    fn reads_a_failed_transaction() {
        // As etcd 3.4.23 answers a transaction whose compare failed.
        let response: Value = serde_json::from_str(
            r#"{"header":{"revision":"3"},"responses":[{"response_range":{"header":{"revision":"3"},
               "kvs":[{"key":"cC8x","create_revision":"2","mod_revision":"3","version":"2","value":"OTk5OTkw"}],"count":"1"}}]}"#,
        )
        .expect("valid JSON");
        let range = &response["responses"][0]["response_range"];
        let kvs = key_values(range).expect("valid kvs");
        assert_eq!(kvs.len(), 1);
        assert_eq!(kvs[0].key, b"p/1");
        assert_eq!(kvs[0].value, b"999990");
        assert_eq!(kvs[0].mod_revision, 3);
        assert_eq!(header_revision(&response).ok(), Some(3));
    }
}
