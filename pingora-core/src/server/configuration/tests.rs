use super::*;

#[test]
fn defaults_match_pingora() {
    let c = ServerConf::default();
    assert_eq!(c.threads, 1);
    assert_eq!(c.listener_tasks_per_fd, 1);
    assert!(c.work_stealing);
    assert!(!c.daemon);
    assert_eq!(c.pid_file, "/tmp/pingora.pid");
    assert_eq!(c.upgrade_sock, "/tmp/pingora_upgrade.sock");
    assert_eq!(c.upstream_keepalive_pool_size, 128);
    assert_eq!(c.max_retries, 16);
    assert_eq!(c.grace_period_seconds, None);
    let n = ServerConf::new().expect("always some");
    assert_eq!(n.version, 1);
    assert_eq!(n.threads, 1);
}

#[test]
fn minimal_and_empty_documents() {
    let c = ServerConf::from_yaml("---\nversion: 1\n").expect("valid");
    assert_eq!(c.version, 1);
    assert_eq!(c.pid_file, "/tmp/pingora.pid");
    let e = ServerConf::from_yaml("").expect("empty is defaults");
    assert_eq!(e, ServerConf::default());
    let e = ServerConf::from_yaml("---\n").expect("empty is defaults");
    assert_eq!(e, ServerConf::default());
}

#[test]
fn full_file() {
    let yaml = r#"
---
version: 1
daemon: true
error_log: /tmp/err.log
pid_file: /tmp/x.pid
upgrade_sock: /tmp/x.sock
user: nobody
group: nogroup
threads: 4
listener_tasks_per_fd: 2
work_stealing: false
ca_file: /etc/ca.pem
grace_period_seconds: 10
graceful_shutdown_timeout_seconds: 3
client_bind_to_ipv4: [1.2.3.4, 5.6.7.8]
client_bind_to_ipv6: ["::1"]
upstream_keepalive_pool_size: 4
upstream_connect_offload_threadpools: 2
upstream_connect_offload_thread_per_pool: 3
upstream_debug_ssl_keylog: true
max_retries: 2
"#;
    let c = ServerConf::from_yaml(yaml).expect("valid");
    assert!(c.daemon);
    assert_eq!(c.error_log.as_deref(), Some("/tmp/err.log"));
    assert_eq!(c.pid_file, "/tmp/x.pid");
    assert_eq!(c.upgrade_sock, "/tmp/x.sock");
    assert_eq!(c.user.as_deref(), Some("nobody"));
    assert_eq!(c.group.as_deref(), Some("nogroup"));
    assert_eq!(c.threads, 4);
    assert_eq!(c.listener_tasks_per_fd, 2);
    assert!(!c.work_stealing);
    assert_eq!(c.ca_file.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(c.grace_period_seconds, Some(10));
    assert_eq!(c.graceful_shutdown_timeout_seconds, Some(3));
    assert_eq!(c.client_bind_to_ipv4, vec!["1.2.3.4", "5.6.7.8"]);
    assert_eq!(c.client_bind_to_ipv6, vec!["::1"]);
    assert_eq!(c.upstream_keepalive_pool_size, 4);
    assert_eq!(c.upstream_connect_offload_threadpools, Some(2));
    assert_eq!(c.upstream_connect_offload_thread_per_pool, Some(3));
    assert!(c.upstream_debug_ssl_keylog);
    assert_eq!(c.max_retries, 2);
    // round trip through to_yaml
    assert_eq!(ServerConf::from_yaml(&c.to_yaml()).expect("round trip"), c);
}

#[test]
fn unknown_key_is_named() {
    let e = ServerConf::from_yaml("version: 1\nthreadz: 4\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("threadz"), "{msg}");
}

#[test]
fn bad_value_is_named() {
    let e = ServerConf::from_yaml("threads: many\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("threads"), "{msg}");
    assert!(msg.contains("many"), "{msg}");
}

#[test]
fn validation_rejects_zero_threads() {
    let e = ServerConf::from_yaml("threads: 0\n").unwrap_err();
    assert!(
        e.to_string().contains("threads must be greater than 0"),
        "{e}"
    );
    let e = ServerConf::from_yaml("listener_tasks_per_fd: 0\n").unwrap_err();
    assert!(e.to_string().contains("listener_tasks_per_fd"), "{e}");
}

#[test]
fn load_from_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conf.yaml");
    std::fs::write(&path, "version: 1\nthreads: 3\n").expect("write");
    let p = path.display().to_string();
    let c = ServerConf::load_from_yaml(&p).expect("valid");
    assert_eq!(c.threads, 3);

    std::fs::write(&path, "version: 1\nbogus: 3\n").expect("write");
    let e = ServerConf::load_from_yaml(&p).unwrap_err().to_string();
    assert!(e.contains(&p) && e.contains("bogus"), "{e}");

    let missing = dir.path().join("missing.yaml").display().to_string();
    let e = ServerConf::load_from_yaml(&missing)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&missing), "{e}");
}

#[test]
fn opt_parsing_and_override() {
    let opt = Opt::parse_from_args(["prog", "-d", "-t", "-c", "/x.yaml"]);
    assert!(opt.daemon && opt.test && !opt.upgrade);
    assert_eq!(opt.conf.as_deref(), Some("/x.yaml"));
    let opt = Opt::parse_from_args(["prog", "--upgrade", "--nocapture", "--conf", "a"]);
    assert!(opt.upgrade && opt.nocapture && !opt.daemon);
    assert_eq!(opt.conf.as_deref(), Some("a"));

    let d = Opt {
        daemon: true,
        ..Default::default()
    };
    assert!(ServerConf::new_with_opt_override(&d).expect("some").daemon);
    let e = ServerConf::load_yaml_with_opt_override(&Opt::default()).unwrap_err();
    assert!(e.to_string().contains("no configuration file"), "{e}");
}

#[test]
fn daemon_override_from_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "version: 1\n").expect("write");
    let opt = Opt {
        daemon: true,
        conf: Some(path.display().to_string()),
        ..Default::default()
    };
    let c = ServerConf::load_yaml_with_opt_override(&opt).expect("valid");
    assert!(c.daemon);
}
