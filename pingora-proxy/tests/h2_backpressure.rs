//! Flow control end to end: a 200 MiB response to a slow reader keeps the proxy's memory
//! bounded, because the proxy reads from the upstream only as fast as the client takes data
//! (HTTP/2 window updates upstream follow what was written downstream).
//!
//! The proxy and the origin run in this test process (alone in this binary), the slow
//! clients (python `h2`, curl with a rate limit) in their own processes; the process's peak
//! RSS (VmHWM) is compared before and after.

#[path = "h2/harness.rs"]
mod harness;

use harness::*;
use serde_json::Value;
use std::time::Duration;

const SIZE: usize = 200 * 1024 * 1024;
/// Bytes per second the clients read at: far slower than the origin can produce.
const RATE: usize = 25 * 1024 * 1024;
/// The most the peak RSS may grow by while relaying the 200 MiB three times.
const BUDGET_KB: u64 = 48 * 1024;

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_keep_proxy_memory_bounded() {
    let origin = serve(Origin::new()).await;
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 10)))).await;
    let path = format!("/big?n={SIZE}");
    // warm up the allocator, the connections and the pool with a small response
    let warm = run_py(
        "slow_reader.py",
        &[
            proxy.port().to_string(),
            "/big?n=1000000".into(),
            RATE.to_string(),
        ],
        STEP,
    )
    .await;
    assert!(warm.status.success(), "{}", text(&warm));
    let before = peak_rss_kb();

    // HTTP/2 client -> proxy -> HTTP/2 upstream
    let out = run_py(
        "slow_reader.py",
        &[proxy.port().to_string(), path.clone(), RATE.to_string()],
        Duration::from_secs(120),
    )
    .await;
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["bytes"], SIZE, "{r}");
    let after_h2 = peak_rss_kb();

    // HTTP/1.1 client (curl, rate limited) -> proxy -> HTTP/2 upstream
    let args = vec![
        "-sS".to_string(),
        "--http1.1".into(),
        "--limit-rate".into(),
        RATE.to_string(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code} %{size_download}".into(),
        format!("http://{proxy}{path}"),
    ];
    let out = run_for("curl", &args, Duration::from_secs(120)).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 {SIZE}"),
        "{}",
        text(&out)
    );
    let after_h1 = peak_rss_kb();

    // HTTP/2 client -> proxy -> HTTP/1.1 upstream
    let proxy_to_h1 = serve(h2c_proxy(ToPeer(h1_peer(origin)))).await;
    let out = run_py(
        "slow_reader.py",
        &[
            proxy_to_h1.port().to_string(),
            path.clone(),
            RATE.to_string(),
        ],
        Duration::from_secs(120),
    )
    .await;
    let r1: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(r1["status"], 200, "{r1}");
    assert_eq!(r1["bytes"], SIZE, "{r1}");
    let after_all = peak_rss_kb();
    println!(
        "peak RSS: {before} kB before, {after_h2} kB after h2->h2 ({} s), {after_h1} kB after \
         h1->h2, {after_all} kB after h2->h1 ({} s); 3 x {} MiB relayed",
        r["seconds"],
        r1["seconds"],
        SIZE >> 20
    );
    assert!(
        after_all - before < BUDGET_KB,
        "peak RSS grew by {} kB (budget {BUDGET_KB} kB)",
        after_all - before
    );
}
