//! `demo-service`: a tiny HTTP service for the demo inventory, built into the agent binary so the
//! demo needs nothing installed. It answers `GET` with `200 ok`, and can be told to fail on its
//! own after a while: crash (exit 1) or hang (accept connections and never answer).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How the demo service misbehaves.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Never.
    None,
    /// Exit with status 1 after this long.
    CrashAfter(Duration),
    /// Stop answering after this long (the process stays alive).
    HangAfter(Duration),
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 1024];
    let _ = stream.read(&mut buf);
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
    );
}

/// Serves on `127.0.0.1:port` until it fails as told. Returns only on a bind error.
pub fn serve(port: u16, failure: Failure) -> std::io::Error {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let started = Instant::now();
    eprintln!("demo-service: listening on 127.0.0.1:{port} ({failure:?})");
    if let Failure::CrashAfter(after) = failure {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            eprintln!("demo-service: crashing on purpose after {after:?}");
            std::process::exit(1);
        });
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        match failure {
            Failure::HangAfter(after) if started.elapsed() >= after => {
                // Hold the connection open and say nothing, like a wedged worker.
                std::thread::spawn(move || {
                    let _keep = stream;
                    std::thread::sleep(Duration::from_secs(3600));
                });
            }
            _ => {
                std::thread::spawn(move || answer(stream));
            }
        }
    }
    std::io::Error::other("listener closed")
}
