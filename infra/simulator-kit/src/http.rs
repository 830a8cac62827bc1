//! Small HTTP helpers the simulators share.

use std::net::SocketAddr;

use axum::http::{HeaderMap, header};

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), trimmed.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The prefix of URLs handed to clients: the configured public URL, else `http://<Host>` of the
/// request, else `http://<listen address>`.
pub fn public_url(
    configured: Option<&str>,
    listen_addr: SocketAddr,
    headers: &HeaderMap,
) -> String {
    if let Some(url) = configured {
        return url.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| listen_addr.to_string());
    format!("http://{host}")
}

/// A URL to reach `addr` (loopback when bound to every interface).
pub fn url_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_and_urls() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        let addr: SocketAddr = "0.0.0.0:8092".parse().unwrap();
        assert_eq!(url_of(addr), "http://127.0.0.1:8092");
        assert_eq!(url_of("127.0.0.2:1".parse().unwrap()), "http://127.0.0.2:1");
        assert_eq!(public_url(Some("https://x"), addr, &headers), "https://x");
        assert_eq!(public_url(None, addr, &headers), "http://0.0.0.0:8092");
        headers.insert(header::HOST, HeaderValue::from_static("sim:9"));
        assert_eq!(public_url(None, addr, &headers), "http://sim:9");
    }
}
