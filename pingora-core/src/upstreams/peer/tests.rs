use super::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr as InetSocketAddr};

fn http(addr: &str) -> HttpPeer {
    HttpPeer::new(addr, false, String::new())
}

#[test]
fn new_accepts_all_address_forms() {
    let expected: InetSocketAddr = "127.0.0.1:8080".parse().expect("literal");
    let forms = [
        HttpPeer::new("127.0.0.1:8080", false, String::new()),
        HttpPeer::new("127.0.0.1:8080".to_string(), false, String::new()),
        HttpPeer::new(("127.0.0.1", 8080), false, String::new()),
        HttpPeer::new(("127.0.0.1".to_string(), 8080), false, String::new()),
        HttpPeer::new(
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            false,
            String::new(),
        ),
        HttpPeer::new(expected, false, String::new()),
        HttpPeer::new("localhost:8080", false, String::new()),
    ];
    for peer in &forms[..6] {
        assert_eq!(peer.address().as_inet(), Some(&expected));
    }
    let resolved = forms[6].address().as_inet().expect("inet");
    assert!(resolved.ip().is_loopback());
    assert_eq!(resolved.port(), 8080);
}

/// A type that only implements `std::net::ToSocketAddrs`, like a
/// load-balancing backend.
struct Custom(InetSocketAddr);
impl std::net::ToSocketAddrs for Custom {
    type Iter = std::iter::Once<InetSocketAddr>;
    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        Ok(std::iter::once(self.0))
    }
}

#[test]
fn new_accepts_custom_to_socket_addrs() {
    let addr: InetSocketAddr = "10.1.2.3:80".parse().expect("literal");
    let peer = HttpPeer::new(Custom(addr), true, "example.org".into());
    assert_eq!(peer.address().as_inet(), Some(&addr));
    assert!(peer.tls());
    assert_eq!(peer.scheme, Scheme::HTTPS);
    assert_eq!(peer.sni(), "example.org");
}

#[test]
fn try_new_reports_unresolvable() {
    assert!(HttpPeer::try_new("no port here", false, String::new()).is_err());
}

#[test]
fn uds_peer() {
    let peer = HttpPeer::new_uds("/tmp/some.sock", false, String::new()).expect("path");
    let path = peer.address().as_unix().and_then(|u| u.as_pathname());
    assert_eq!(path, Some(std::path::Path::new("/tmp/some.sock")));
    assert!(BasicPeer::new_uds("/tmp/some.sock").is_ok());
}

#[test]
fn reuse_hash_separates_connection_shapes() {
    let base = http("127.0.0.1:80");
    let same = http("127.0.0.1:80");
    assert_eq!(base.reuse_hash(), same.reuse_hash());

    let mut variants: Vec<HttpPeer> = Vec::new();
    variants.push(http("127.0.0.1:81"));
    variants.push(HttpPeer::new("127.0.0.1:80", true, String::new()));
    variants.push(HttpPeer::new("127.0.0.1:80", false, "a.example".into()));
    let mut p = base.clone();
    p.group_key = 7;
    variants.push(p);
    let mut p = base.clone();
    p.options.verify_cert = false;
    variants.push(p);
    let mut p = base.clone();
    p.options.verify_hostname = false;
    variants.push(p);
    let mut p = base.clone();
    p.options.alternative_cn = Some("alt".into());
    variants.push(p);
    let mut p = base.clone();
    p.options.bind_to = Some(BindTo::new("127.0.0.2:0".parse().expect("literal")));
    variants.push(p);
    let mut p = base.clone();
    p.options.set_http_version(2, 1);
    variants.push(p);
    let mut p = base.clone();
    p.options.ca = Some(Arc::new(
        vec![X509::from_der(vec![1, 2, 3])].into_boxed_slice(),
    ));
    variants.push(p);
    let mut p = base.clone();
    p.client_cert_key = Some(Arc::new(CertKey::new(
        vec![X509::from_der(vec![9])],
        vec![0],
    )));
    variants.push(p);
    let mut p = base.clone();
    p.options.dscp = Some(10);
    variants.push(p);
    // the options packed into one word: each one, and a set value equal to the default
    let mut p = base.clone();
    p.options.dscp = Some(0);
    variants.push(p);
    let mut p = base.clone();
    p.options.tcp_fast_open = true;
    variants.push(p);
    let mut p = base.clone();
    p.options.second_keyshare = !p.options.second_keyshare;
    variants.push(p);
    let mut p = base.clone();
    p.options.tcp_recv_buf = Some(0);
    variants.push(p);
    let mut p = base.clone();
    p.options.curves = Some("X25519");
    variants.push(p);
    let mut p = base.clone();
    p.options
        .extra_proxy_headers
        .insert("x-a".into(), b"1".to_vec());
    variants.push(p);

    for (i, v) in variants.iter().enumerate() {
        assert_ne!(
            base.reuse_hash(),
            v.reuse_hash(),
            "variant {i} shares base's pool"
        );
    }
    // and no two variants share one either
    for (i, a) in variants.iter().enumerate() {
        for b in &variants[i + 1..] {
            assert_ne!(a.reuse_hash(), b.reuse_hash(), "variant {i} shares a pool");
        }
    }

    // timeouts do not change the connection
    let mut p = base.clone();
    p.options.idle_timeout = Some(Duration::from_secs(3));
    p.options.read_timeout = Some(Duration::from_secs(3));
    assert_eq!(base.reuse_hash(), p.reuse_hash());
}

#[test]
fn peer_defaults_from_options() {
    let mut peer = http("127.0.0.1:80");
    assert!(peer.verify_cert() && peer.verify_hostname());
    assert_eq!(peer.get_alpn(), Some(&ALPN::H1));
    assert_eq!(peer.connection_timeout(), None);
    let opts = peer.get_mut_peer_options().expect("http peer has options");
    opts.connection_timeout = Some(Duration::from_millis(5));
    opts.total_connection_timeout = Some(Duration::from_millis(9));
    opts.idle_timeout = Some(Duration::from_secs(1));
    opts.tcp_fast_open = true;
    assert_eq!(peer.connection_timeout(), Some(Duration::from_millis(5)));
    assert_eq!(
        peer.total_connection_timeout(),
        Some(Duration::from_millis(9))
    );
    assert_eq!(peer.idle_timeout(), Some(Duration::from_secs(1)));
    assert!(peer.tcp_fast_open());
    assert_eq!(PeerOptions::default().max_h2_streams, 1);
}

#[test]
fn display_and_debug() {
    let mut peer = HttpPeer::new("127.0.0.1:443", true, "x.example".into());
    peer.options.connection_timeout = Some(Duration::from_secs(1));
    let shown = peer.to_string();
    assert!(
        shown.contains("127.0.0.1:443") && shown.contains("HTTPS") && shown.contains("x.example")
    );
    assert!(format!("{peer:?}").contains("HttpPeer"));
    assert!(peer.options.to_string().contains("conn_timeout: 1s"));
    let basic = BasicPeer::new("127.0.0.1:1");
    assert_eq!(basic.to_string(), "addr: 127.0.0.1:1");
    assert!(!basic.tls());
    let key = CertKey::new(vec![X509::from_der(vec![1])], vec![0xAA, 0xBB]);
    assert!(
        !format!("{key:?}").contains("170"),
        "the private key is never printed"
    );
}

#[test]
fn proxy_peer() {
    let peer = HttpPeer::new_proxy(
        "/tmp/proxy.sock",
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        443,
        true,
        "s.example",
        Default::default(),
    );
    let proxy = peer.get_proxy().expect("proxy set");
    assert_eq!(proxy.host, "10.0.0.1");
    assert_eq!(proxy.port, 443);
    assert!(peer.to_string().contains("next_hop: /tmp/proxy.sock"));
}

#[tokio::test]
async fn matches_fd_checks_connected_address() {
    use std::os::unix::io::AsRawFd;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let fd = conn.as_raw_fd();
    assert!(HttpPeer::new(addr, false, String::new()).matches_fd(fd));
    let mut other = addr;
    other.set_port(addr.port().wrapping_add(1));
    assert!(!HttpPeer::new(other, false, String::new()).matches_fd(fd));
    assert!(!BasicPeer::new_from_inet(addr).matches_fd(-1));
}
