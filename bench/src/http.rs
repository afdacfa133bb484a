//! "Answering": an HTTP/1.0 `GET /` on a fresh connection that gets a status line back, asked
//! from the host or from inside a network namespace (the systemd container has its own).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one ask waits for the status line: a stopped (SIGSTOPped) server accepts into its
/// backlog and never answers.
const ANSWER_WAIT: Duration = Duration::from_millis(200);
/// Pause between two asks while waiting.
const POLL: Duration = Duration::from_millis(1);

/// Asks on a thread of its own, which has entered a network namespace or stayed on the host's.
pub(crate) struct Prober {
    jobs: mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Prober {
    /// Asking from the host's network namespace.
    pub(crate) fn host() -> Prober {
        Self::spawn(None)
    }

    /// Asking from the network namespace of process `pid` (the container's systemd).
    pub(crate) fn in_netns_of(pid: u32) -> Prober {
        Self::spawn(Some(pid))
    }

    fn spawn(netns_of: Option<u32>) -> Prober {
        let (jobs, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::spawn(move || {
            if let Some(pid) = netns_of {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                    .expect("the container's network namespace");
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns into the container's network namespace");
            }
            for job in rx {
                job();
            }
        });
        Prober { jobs }
    }

    /// Runs `f` on the prober's thread and returns what it gives.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("prober thread");
        rx.recv().expect("prober answer")
    }

    /// Whether `port` on 127.0.0.1 answers now.
    pub(crate) fn answers(&self, port: u16) -> bool {
        self.run(move || answers(port))
    }

    /// Waits until `port` answers and `ready` holds (checked before each ask), at most `cap`;
    /// the time from `since` when it did.
    pub(crate) fn wait_answering(
        &self,
        port: u16,
        since: Instant,
        cap: Duration,
        ready: impl Fn() -> bool + Send + 'static,
    ) -> Option<Duration> {
        self.run(move || loop {
            if since.elapsed() > cap {
                return None;
            }
            if ready() && answers(port) {
                return Some(since.elapsed());
            }
            std::thread::sleep(POLL);
        })
    }
}

/// One ask: connect, `GET /`, a status line back within [`ANSWER_WAIT`].
pub(crate) fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, ANSWER_WAIT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(ANSWER_WAIT));
    let _ = s.set_write_timeout(Some(ANSWER_WAIT));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < 5 {
        match s.read(&mut head[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    head.starts_with(b"HTTP/")
}
