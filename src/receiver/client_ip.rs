//! The client address: the peer, or what a trusted proxy says in `X-Forwarded-For` /
//! `X-Real-IP`.

use crate::config::IpNet;
use actix_web::HttpRequest;
use std::net::IpAddr;

/// The client's address as far as it can be believed.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    if let Some(forwarded) = header(req, "x-forwarded-for") {
        // Walk from the nearest hop back; the first address not of a trusted proxy is the
        // client. If every hop is trusted, the farthest one is.
        let hops: Vec<IpAddr> = forwarded
            .split(',')
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        if let Some(ip) = hops.iter().rev().find(|ip| !is_trusted(**ip)) {
            return Some(*ip);
        }
        if let Some(first) = hops.first() {
            return Some(*first);
        }
    }
    if let Some(real) = header(req, "x-real-ip").and_then(|v| v.trim().parse().ok()) {
        return Some(real);
    }
    Some(peer)
}

/// The client as the failed-credentials limiter counts it: its address, and whether an
/// untrusted peer named other clients in forwarding headers (a proxy missing from
/// `server.trusted_proxies`).
pub fn client(req: &HttpRequest, trusted: &[IpNet]) -> Option<crate::limiter::Client> {
    let ip = client_ip(req, trusted)?;
    let peer = req.peer_addr()?.ip();
    let forwards = header(req, "x-forwarded-for").is_some() || header(req, "x-real-ip").is_some();
    Some(crate::limiter::Client {
        ip,
        untrusted_proxy: forwards && !trusted.iter().any(|n| n.contains(peer)),
    })
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn trusted() -> Vec<IpNet> {
        vec![
            IpNet::parse("127.0.0.1/32").unwrap(),
            IpNet::parse("10.0.0.0/8").unwrap(),
        ]
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_peers() {
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "203.0.113.9, 10.1.1.1"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted()),
            Some("203.0.113.9".parse().unwrap())
        );

        let req = TestRequest::default()
            .peer_addr("198.51.100.7:1000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "203.0.113.9"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted()),
            Some("198.51.100.7".parse().unwrap())
        );

        let req = TestRequest::default()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Real-IP", "192.0.2.4"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted()),
            Some("192.0.2.4".parse().unwrap())
        );
    }
}
