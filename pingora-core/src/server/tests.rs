use super::*;

fn opt(args: &[&str]) -> Opt {
    let mut all = vec!["prog"];
    all.extend_from_slice(args);
    Opt::parse_from_args(all)
}

#[test]
fn bootstrap_plain_is_ready() {
    let mut server = Server::new(None).expect("defaults");
    assert_eq!(server.try_bootstrap().expect("ok"), Bootstrap::Ready);
    assert!(server.listen_fds.is_some());
}

#[test]
fn test_flag_passes_with_valid_conf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "version: 1\nthreads: 2\n").expect("write");
    let p = path.display().to_string();
    let mut server = Server::new(opt(&["-t", "-c", &p])).expect("valid");
    assert_eq!(server.configuration.threads, 2);
    assert_eq!(server.try_bootstrap().expect("ok"), Bootstrap::TestPassed);
}

#[test]
fn test_flag_reports_invalid_conf() {
    // a configuration built in code skips file validation until bootstrap
    let conf = ServerConf {
        threads: 0,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt(&["-t"]), conf);
    let e = server.try_bootstrap().expect_err("invalid");
    assert!(
        e.to_string().contains("threads must be greater than 0"),
        "{e}"
    );
}

#[test]
fn invalid_conf_file_fails_server_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "version: 1\nthreds: 2\n").expect("write");
    let p = path.display().to_string();
    let e = Server::new(opt(&["-t", "-c", &p])).err().expect("invalid");
    assert!(e.to_string().contains("threds"), "{e}");
    assert!(e.to_string().contains(&p), "{e}");
}

#[test]
fn upgrade_listens_on_upgrade_sock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("up.sock").display().to_string();
    let conf = ServerConf {
        upgrade_sock: sock.clone(),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt(&["-u"]), conf);
    assert_eq!(server.try_bootstrap().expect("ok"), Bootstrap::Ready);
    assert!(server.upgrade_listener.is_some());
    assert!(std::path::Path::new(&sock).exists());
    // the socket file goes away with the listener
    drop(server);
    assert!(!std::path::Path::new(&sock).exists());
}

#[test]
fn upgrade_reports_an_unusable_upgrade_sock() {
    let conf = ServerConf {
        upgrade_sock: "/nonexistent-dir/up.sock".into(),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt(&["-u"]), conf);
    let e = server.try_bootstrap().expect_err("cannot bind");
    assert!(e.to_string().contains("/nonexistent-dir/up.sock"), "{e}");
}

#[test]
fn test_flag_reports_unknown_user() {
    let conf = ServerConf {
        user: Some("no-such-user-xyz".into()),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt(&["-t"]), conf);
    let e = server.try_bootstrap().expect_err("unknown user");
    assert!(e.to_string().contains("no-such-user-xyz"), "{e}");
}

#[test]
fn daemon_flag_overrides_conf() {
    let server = Server::new_with_opt_and_conf(opt(&["-d"]), ServerConf::default());
    assert!(server.configuration.daemon);
    let server = Server::new(opt(&["-d"])).expect("defaults");
    assert!(server.configuration.daemon);
    assert_eq!(server.configuration.version, 1);
}
