//! The two HTTP calls the generator makes (create a session, create a
//! match), over a plain TCP connection bound to a chosen source address, so
//! one process can spread its sockets over 127.0.0.x.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `server` from `source` (any port), or from the default address.
pub async fn connect_from(server: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `POST path` with a JSON body; returns the status and the body.
pub async fn post_json(
    server: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    body: &str,
) -> io::Result<(u16, String)> {
    request(server, source, "POST", path, Some(body)).await
}

/// `POST /v1/sessions`: a new session's token.
pub async fn new_session(server: SocketAddr, source: Option<IpAddr>) -> Result<String, String> {
    let (status, body) = post_json(server, source, "/v1/sessions", "{}")
        .await
        .map_err(|e| format!("session: {e}"))?;
    if status != 201 {
        return Err(format!("session: HTTP {status} {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let token = v["token"].as_str().ok_or("session without token")?;
    Ok(token.to_string())
}

/// `GET path`; returns the status and the body.
pub async fn get(server: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    request(server, None, "GET", path, None).await
}

async fn request(
    server: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> io::Result<(u16, String)> {
    let mut stream = connect_from(server, source).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n");
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    (&mut stream).take(8 << 20).read_to_end(&mut raw).await?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> io::Result<(u16, String)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        s = rest.get(n + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 11\r\n\r\n{\"a\":\"b\"}\r\n";
        assert_eq!(
            parse_response(plain).expect("parses"),
            (201, "{\"a\":\"b\"}\r\n".into())
        );
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).expect("parses"),
            (200, "{\"a\":1}".into())
        );
        assert!(parse_response(b"garbage").is_err());
    }
}
