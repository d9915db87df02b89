//! A small HTTP/1.1 client for the PAM API, kept alive over one
//! connection: what the tests and `casino pam-load` speak. Requests carry a
//! `Content-Length`; responses are read by theirs (the server always sends
//! one).

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest response accepted, headers and body.
const RESPONSE_MAX_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct PamClient {
    stream: BufReader<TcpStream>,
    address: SocketAddr,
    api_key: String,
    buffer: Vec<u8>,
}

/// A response: HTTP status, JSON body (Null if empty or not JSON), and the
/// headers as (lower-case name, value).
#[derive(Debug, Clone)]
pub struct PamResponse {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl PamResponse {
    /// The `error.code` of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl PamClient {
    pub async fn connect(address: SocketAddr, api_key: &str) -> std::io::Result<PamClient> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(PamClient { stream: BufReader::new(stream), address, api_key: api_key.to_string(), buffer: Vec::with_capacity(1024) })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sends one request with the client's API key and `headers`, and reads its response.
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> std::io::Result<PamResponse> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        self.encode(method, path, headers, body, &mut buffer);
        let written = self.stream.get_mut().write_all(&buffer).await;
        self.buffer = buffer;
        written?;
        self.read_response().await
    }

    /// Appends one request to `out`, for `pipeline`.
    pub fn encode(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let body = body.unwrap_or("");
        let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.address, body.len());
        if !self.api_key.is_empty() {
            let _ = write!(out, "Authorization: Bearer {}\r\n", self.api_key);
        }
        if !body.is_empty() {
            out.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        for (name, value) in headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
    }

    /// Sends requests made by `encode` in one write (HTTP/1.1 pipelining)
    /// and reads their `count` responses, in order.
    pub async fn pipeline(&mut self, requests: &[u8], count: usize) -> std::io::Result<Vec<PamResponse>> {
        self.stream.get_mut().write_all(requests).await?;
        let mut responses = Vec::with_capacity(count);
        for _ in 0..count {
            responses.push(self.read_response().await?);
        }
        Ok(responses)
    }

    async fn read_response(&mut self) -> std::io::Result<PamResponse> {
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = self.stream.read_u8().await?;
            head.push(byte);
            if head.len() > RESPONSE_MAX_BYTES {
                return Err(invalid("response headers too large"));
            }
        }
        let text = std::str::from_utf8(&head).map_err(|_| invalid("response headers are not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().ok_or_else(|| invalid("no status line"))?;
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("bad status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        if length > RESPONSE_MAX_BYTES {
            return Err(invalid("response body too large"));
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(PamResponse { status, body, headers })
    }
}
