//! Benchmark harness: wall time of one heal-loop tick over N services, with the in-memory
//! process manager and real local probe targets (a TCP listener and a keep-alive HTTP server),
//! and the process's resident memory.
//!
//! ```text
//! cargo run --release -p central-core --example tick_bench -- 250 500 1000 2000
//! ```
//!
//! Each service has a process probe (through the in-memory manager) and a network probe: TCP
//! connect for odd services, HTTP GET for even ones. Probes run with the loop's concurrency
//! bound (`loop.max_concurrency`, 64 here). For each N: one warm-up tick, then the median and
//! mean of `ROUNDS` ticks, and VmRSS from /proc/self/status after them.

use std::sync::Arc;
use std::time::Instant;

use central_core::{Clock, HealLoop, Inventory, LoopOptions, NodeTags, Ports};
use process_manager::{MemoryProcessManager, ProcessManagerPort, ServiceConfig, ServiceLabel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ROUNDS: usize = 7;

/// A TCP target that accepts and closes.
async fn tcp_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    addr
}

/// An HTTP/1.1 target answering 200 to every request, keeping connections alive so the probe
/// client's pool is exercised as in production.
async fn http_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if sock.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}/health")
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn bench(n: usize, tcp: &str, http: &str) {
    let pm = Arc::new(MemoryProcessManager::new());
    let mut text = String::from("[loop]\nmax_concurrency = 64\n\n");
    for i in 0..n {
        let label = format!("svc-{i:05}");
        pm.enable(&ServiceConfig::new(
            ServiceLabel::new(label.clone()).expect("label"),
            "/opt/bin/svc",
        ))
        .await
        .expect("enable");
        let network = if i % 2 == 1 {
            format!("[[service.probe]]\nkind = \"tcp\"\naddress = \"{tcp}\"\n")
        } else {
            format!("[[service.probe]]\nkind = \"http\"\nurl = \"{http}\"\n")
        };
        text.push_str(&format!(
            "[[service]]\nlabel = \"{label}\"\nmanager = \"null\"\n\n[[service.probe]]\nkind = \"process\"\n\n{network}\n"
        ));
    }
    let inventory = Inventory::parse("bench.toml", &text).expect("inventory");
    let mut heal = HealLoop::new(
        &inventory,
        Ports::new().with_manager("null", pm),
        LoopOptions::new(NodeTags::new("bench", "linux")).with_clock(Clock::system()),
    )
    .expect("loop");

    let warm = heal.tick().await;
    assert!(
        warm.events.is_empty(),
        "all healthy: {:?}",
        warm.events.first()
    );
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let report = heal.tick().await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(report.events.is_empty(), "{:?}", report.events.first());
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let median = times[times.len() / 2];
    println!(
        "services={n:5}  tick median={median:8.2} ms  mean={mean:8.2} ms  min={:8.2} ms  max={:8.2} ms  per-service={:6.1} µs  VmRSS={} KiB",
        times[0],
        times[times.len() - 1],
        median * 1000.0 / n as f64,
        rss_kib().map_or("?".to_string(), |k| k.to_string()),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![250, 500, 1000, 2000]
    } else {
        sizes
    };
    let tcp = tcp_target().await;
    let http = http_target().await;
    println!(
        "tick_bench: {} worker threads, {ROUNDS} ticks per size after one warm-up; VmRSS before: {} KiB",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rss_kib().map_or("?".to_string(), |k| k.to_string()),
    );
    for n in sizes {
        bench(n, &tcp, &http).await;
    }
}
