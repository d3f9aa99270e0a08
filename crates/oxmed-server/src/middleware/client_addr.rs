//! The client's IP address, as far as the server can trust it.
//!
//! Behind reverse proxies the TCP peer is the nearest proxy, and the real client is somewhere in
//! `X-Forwarded-For`. Every entry in that header left of what the trusted proxies wrote is
//! whatever the client chose to send, so the only safe reading counts hops from the right: the
//! deployment says how many proxies it runs (`OXMED_TRUSTED_PROXIES`), and the address the
//! outermost of them saw is the client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Once;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use http::header::HeaderName;

/// The de-facto standard header, not RFC 7239 `Forwarded`: that is what nginx, HAProxy, cloud
/// load balancers and Medplum's Express (`trust proxy`) agree on.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What a request carries when the server knows nothing of its origin (no `ConnectInfo`, as
/// with `oneshot` in tests): all such requests then share one identity instead of failing.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The client address of a request, computed once by [`client_addr_layer`] and read from the
/// request extensions by whatever needs it (rate limits, audit logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// The client's IP address given the TCP peer, the request headers and the number of reverse
/// proxies in front of the server.
///
/// The rule: take every `X-Forwarded-For` header instance in order, split each on commas and
/// trim the entries; append `peer` as the last hop. With `trusted_proxies = N`, the client is
/// the entry `N` positions from the right end of that list, i.e. the address that the outermost
/// trusted proxy saw. `N = 0` is always `peer`, and the header is not even read, so a client
/// that connects directly cannot spoof its address.
///
/// If that entry does not exist (the list is shorter than `N + 1`: the request came through
/// fewer proxies than configured) the leftmost entry is taken instead; if the chosen entry does
/// not parse, the next entry to its right that does is taken. Either way the result was written
/// by a trusted proxy or is the peer itself, never a client-supplied entry beyond the trusted
/// range. Entries may be plain IPv4 or IPv6 addresses, `v4:port`, `[v6]` or `[v6]:port`.
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are reported as IPv4.
///
/// Example, with peer `10.0.0.2` and `X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.0.0.1`, the
/// combined list is `[6.6.6.6, 203.0.113.7, 10.0.0.1, 10.0.0.2]`:
/// - `N = 0` gives `10.0.0.2` (the peer);
/// - `N = 1` gives `10.0.0.1` (Medplum's default of one hop judges by the rightmost entry);
/// - `N = 2` gives `203.0.113.7`, the client as seen by the outer proxy; `6.6.6.6` is what the
///   client claimed, and no `N` below 3 will ever believe it.
///
/// ```
/// # use std::net::{IpAddr, SocketAddr};
/// # use http::{HeaderMap, HeaderValue};
/// # use oxmed_server::middleware::client_ip;
/// let peer: SocketAddr = "10.0.0.2:51000".parse().unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     "x-forwarded-for",
///     HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.1"),
/// );
/// let ip = |n| client_ip(peer, &headers, n).to_string();
/// assert_eq!(ip(0), "10.0.0.2");
/// assert_eq!(ip(1), "10.0.0.1");
/// assert_eq!(ip(2), "203.0.113.7");
/// ```
///
/// A caveat inherent to counting hops: a client that can reach an inner proxy directly,
/// bypassing the outer ones, chooses the entries the missing proxies would have written.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted_proxies: usize) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if trusted_proxies == 0 {
        return peer_ip;
    }
    // Split on bytes, not on a `&str`: one header instance with a non-ASCII byte in a
    // client-written entry must not hide the proxy-written entries on the same line.
    let forwarded: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .collect();
    // The peer sits at index `forwarded.len()` of the combined list.
    let start = forwarded.len().saturating_sub(trusted_proxies);
    forwarded[start..]
        .iter()
        .find_map(|entry| parse_entry(entry))
        .unwrap_or(peer_ip)
}

/// One `X-Forwarded-For` entry as an address; `None` for anything else (`unknown`, obfuscated
/// node names, garbage).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    // `[v6]` without a port is not a `SocketAddr`, but some proxies write it.
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

/// Middleware that computes [`client_ip`] once and stores it as [`ClientAddr`] in the request
/// extensions; the state is the number of trusted proxies.
///
/// It reads `ConnectInfo<SocketAddr>` from the extensions rather than extracting it, so a
/// service built without `into_make_service_with_connect_info` degrades to [`UNKNOWN_CLIENT`]
/// as the peer instead of rejecting every request.
pub async fn client_addr_layer(
    State(trusted_proxies): State<usize>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(info) => info.0,
        None => {
            // In production this means every client shares one address, and so one rate-limit
            // allowance: loud once, not once per request.
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "no ConnectInfo<SocketAddr>: serve with into_make_service_with_connect_info, \
                     client addresses fall back to {UNKNOWN_CLIENT}"
                );
            });
            SocketAddr::new(UNKNOWN_CLIENT, 0)
        }
    };
    let ip = client_ip(peer, req.headers(), trusted_proxies);
    req.extensions_mut().insert(ClientAddr(ip));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Extension;
    use axum::routing::get;
    use http::{HeaderValue, StatusCode};
    use tower::ServiceExt;

    use super::*;

    const PEER: &str = "10.0.0.2:51000";

    fn peer() -> SocketAddr {
        PEER.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(&X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_trusted_proxy_ignores_the_header() {
        let spoofed = xff(&["1.2.3.4", "5.6.7.8"]);
        assert_eq!(client_ip(peer(), &spoofed, 0), ip("10.0.0.2"));
        assert_eq!(client_ip(peer(), &HeaderMap::new(), 0), ip("10.0.0.2"));
    }

    #[test]
    fn one_trusted_proxy_takes_the_rightmost_entry() {
        // Medplum's behaviour: "a, b" is judged by b.
        let headers = xff(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("203.0.113.7"));
    }

    #[test]
    fn two_trusted_proxies_take_the_second_from_the_right() {
        let headers = xff(&["6.6.6.6, 203.0.113.7, 10.0.0.1"]);
        assert_eq!(client_ip(peer(), &headers, 2), ip("203.0.113.7"));
        assert_eq!(client_ip(peer(), &headers, 1), ip("10.0.0.1"));
    }

    #[test]
    fn header_instances_are_concatenated_in_order() {
        // The client's own header arrives first; the proxies append theirs.
        let headers = xff(&["6.6.6.6", "203.0.113.7", "10.0.0.1"]);
        assert_eq!(client_ip(peer(), &headers, 2), ip("203.0.113.7"));
        let headers = xff(&["6.6.6.6, 7.7.7.7", "203.0.113.7"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("203.0.113.7"));
        assert_eq!(client_ip(peer(), &headers, 2), ip("7.7.7.7"));
    }

    #[test]
    fn spoofed_entries_left_of_the_trusted_range_are_never_chosen() {
        // The client prepends a whole fake chain; only the proxy's entry is believed.
        let headers = xff(&["1.1.1.1, 2.2.2.2, 3.3.3.3, 203.0.113.7"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("203.0.113.7"));
        assert_ne!(client_ip(peer(), &headers, 1), ip("1.1.1.1"));
    }

    #[test]
    fn missing_header_with_trusted_proxies_is_the_peer() {
        assert_eq!(client_ip(peer(), &HeaderMap::new(), 1), ip("10.0.0.2"));
        assert_eq!(client_ip(peer(), &HeaderMap::new(), 3), ip("10.0.0.2"));
    }

    #[test]
    fn short_list_takes_the_leftmost_entry() {
        // Two proxies configured, but the request only went through one.
        let headers = xff(&["203.0.113.7"]);
        assert_eq!(client_ip(peer(), &headers, 2), ip("203.0.113.7"));
        assert_eq!(client_ip(peer(), &headers, 5), ip("203.0.113.7"));
    }

    #[test]
    fn garbage_at_the_position_falls_back_rightwards_within_the_trusted_range() {
        let headers = xff(&["1.1.1.1, unknown, 10.0.0.1"]);
        // Position 2 from the right is "unknown": the next trusted entry is 10.0.0.1, never the
        // client-written 1.1.1.1.
        assert_eq!(client_ip(peer(), &headers, 2), ip("10.0.0.1"));
        let headers = xff(&["1.1.1.1, not-an-ip"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("10.0.0.2"));
        let headers = xff(&["1.1.1.1,,"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("10.0.0.2"));
        assert_eq!(client_ip(peer(), &headers, 2), ip("10.0.0.2"));
        assert_eq!(client_ip(peer(), &headers, 3), ip("1.1.1.1"));
    }

    #[test]
    fn non_ascii_bytes_only_spoil_their_own_entry() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"caf\xe9, 203.0.113.7").unwrap();
        headers.insert(&X_FORWARDED_FOR, value);
        assert_eq!(client_ip(peer(), &headers, 1), ip("203.0.113.7"));
        assert_eq!(client_ip(peer(), &headers, 2), ip("203.0.113.7"));
    }

    #[test]
    fn ipv6_and_port_forms_are_understood() {
        let headers = xff(&["2001:db8::1"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("2001:db8::1"));
        let headers = xff(&["[2001:db8::2]:4711"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("2001:db8::2"));
        let headers = xff(&["[2001:db8::3]"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("2001:db8::3"));
        let headers = xff(&["203.0.113.9:8080"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("203.0.113.9"));
        let headers = xff(&[" 203.0.113.9 ,  2001:db8::4 "]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("2001:db8::4"));
        assert_eq!(client_ip(peer(), &headers, 2), ip("203.0.113.9"));
        // An unbracketed v6 with a port suffix is ambiguous and must not be guessed at.
        let headers = xff(&["2001:db8::5:80:80:80:80:80"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("10.0.0.2"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_reported_as_ipv4() {
        let v6_peer = SocketAddr::new(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()), 1);
        assert_eq!(client_ip(v6_peer, &HeaderMap::new(), 0), ip("192.0.2.1"));
        let headers = xff(&["::ffff:198.51.100.3"]);
        assert_eq!(client_ip(peer(), &headers, 1), ip("198.51.100.3"));
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1);
        assert_eq!(client_ip(v6, &HeaderMap::new(), 0), ip("::1"));
    }

    async fn echo(Extension(ClientAddr(ip)): Extension<ClientAddr>) -> String {
        ip.to_string()
    }

    fn app(trusted: usize) -> Router {
        Router::new()
            .route("/", get(echo))
            .layer(axum::middleware::from_fn_with_state(
                trusted,
                client_addr_layer,
            ))
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn layer_uses_connect_info_and_ignores_spoofing_without_trusted_proxies() {
        let mut req = Request::builder()
            .uri("/")
            .header("x-forwarded-for", "1.2.3.4")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer()));
        let response = app(0).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "10.0.0.2");
    }

    #[tokio::test]
    async fn layer_applies_trusted_proxies() {
        let mut req = Request::builder()
            .uri("/")
            .header("x-forwarded-for", "1.2.3.4, 203.0.113.7")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer()));
        let response = app(1).oneshot(req).await.unwrap();
        assert_eq!(body_text(response).await, "203.0.113.7");
    }

    #[tokio::test]
    async fn layer_without_connect_info_falls_back_to_unspecified() {
        let req = Request::builder().uri("/").body(Body::empty()).unwrap();
        let response = app(0).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "0.0.0.0");
        // A forwarded entry is still believed when a proxy is trusted.
        let req = Request::builder()
            .uri("/")
            .header("x-forwarded-for", "203.0.113.7")
            .body(Body::empty())
            .unwrap();
        let response = app(1).oneshot(req).await.unwrap();
        assert_eq!(body_text(response).await, "203.0.113.7");
    }

    #[tokio::test]
    async fn real_connection_provides_the_peer_address() {
        // The one test that goes through `into_make_service_with_connect_info`, as the server
        // must, to prove the layer reads what axum actually inserts.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app(0).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        let body = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .header("x-forwarded-for", "1.2.3.4")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        server.abort();
        assert_eq!(body, "127.0.0.1");
    }
}
