//! The real listener on loopback against clients that hold connections: idle, trickling their
//! headers, trickling a body, and more connections than the cap. Bounded: every wait has a
//! deadline, and the server stops at the end.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use unisight_serve::ServiceConfig;

use super::service_state;

const HEADER_TIMEOUT: Duration = Duration::from_millis(800);
const REQUEST_DEADLINE: Duration = Duration::from_millis(1500);

/// Reads until the server closes the connection or `within` passes; what was read, and whether
/// it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

/// Writes `bytes` one at a time, `gap` apart, until the server stops taking them or `within`
/// passes; whether the server closed the connection first.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], gap: Duration, within: Duration) -> bool {
    let started = Instant::now();
    for b in bytes.iter().cycle() {
        if started.elapsed() > within {
            return false;
        }
        if stream.write_all(&[*b]).await.is_err() {
            return true;
        }
        tokio::time::sleep(gap).await;
    }
    unreachable!("cycle never ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_and_connections_are_capped() {
    let config = ServiceConfig {
        header_timeout: HEADER_TIMEOUT,
        request_deadline: REQUEST_DEADLINE,
        max_connections: 3,
        ..ServiceConfig::default()
    };
    let (state, _dir, _) = service_state(2, false, config);
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(unisight_serve::serve_until(
        "127.0.0.1:0".parse().unwrap(),
        state,
        move |addr| addr_tx.send(addr).unwrap(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let addr = addr_rx.await.unwrap();
    let limit = HEADER_TIMEOUT + REQUEST_DEADLINE + Duration::from_secs(3);

    // an idle connection is closed after the header timeout
    let started = Instant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut idle, limit).await;
    assert!(
        closed && started.elapsed() < limit,
        "idle: {:?}",
        started.elapsed()
    );

    // headers sent a byte at a time are cut off too
    let mut slow_head = TcpStream::connect(addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: yes\r\n";
    let cut = trickle(&mut slow_head, head, Duration::from_millis(100), limit).await;
    assert!(cut, "a trickled head was never cut off");

    // a body sent a byte at a time gets 408 at the request deadline, and the connection closes
    let started = Instant::now();
    let mut slow_body = TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(
            b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n\
              Content-Length: 1000000\r\n\r\n",
        )
        .await
        .unwrap();
    let cut = trickle(&mut slow_body, b"x", Duration::from_millis(100), limit).await;
    let (answer, closed) = read_until_closed(&mut slow_body, Duration::from_secs(2)).await;
    assert!(cut || closed, "a trickled body was never cut off");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "slow body: {answer}"
    );
    assert!(
        started.elapsed() < limit,
        "slow body: {:?}",
        started.elapsed()
    );

    // three connections fill the cap: a fourth is not answered until one of them goes
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut fourth, limit).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "fourth: {answer}");
    // it waited for an idle one to be closed at the header timeout
    assert!(
        started.elapsed() >= HEADER_TIMEOUT / 2,
        "the fourth connection was served at once: {:?}",
        started.elapsed()
    );
    drop(held);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(unisight_serve::DRAIN + Duration::from_secs(1), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
