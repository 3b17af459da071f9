//! A TCP relay the tests control, put between danxia and a real server to
//! make the backend fail on demand: [`Relay::abort`] cuts every relayed
//! connection at once (both directions shut down mid-stream, as when the
//! server's host dies or the network is cut), [`Relay::stop`] also stops
//! accepting (the server is down: connections are refused), and
//! [`Relay::start`] listens again on the same port (the server is back).
//! Plain threads and blocking sockets: the relay must not depend on the
//! runtime or code under test.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// A relay from 127.0.0.1:[`Relay::port`] to a target address.
pub struct Relay {
    port: u16,
    target: String,
    /// Every socket of every relayed connection, for [`Relay::abort`].
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes relayed from the target to the client side so far.
    down_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay to `target` (e.g. "127.0.0.1:5432") on a free port.
    pub fn start_to(target: &str) -> Relay {
        let mut r = Relay {
            port: 0,
            target: target.to_string(),
            conns: Arc::default(),
            down_bytes: Arc::default(),
            stop: Arc::default(),
            acceptor: None,
        };
        r.start();
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, for a listener's `backend`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes relayed from the server so far (to tell when a result streams).
    pub fn down_bytes(&self) -> u64 {
        self.down_bytes.load(Ordering::Relaxed)
    }

    /// Listens (again) on the relay's port and relays new connections.
    pub fn start(&mut self) {
        if self.acceptor.is_some() {
            return;
        }
        let bind = format!("127.0.0.1:{}", self.port);
        let listener = (0..100)
            .find_map(|_| match TcpListener::bind(&bind) {
                Ok(l) => Some(l),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    None
                }
            })
            .unwrap_or_else(|| panic!("relay cannot bind {bind}"));
        self.port = listener.local_addr().expect("relay local_addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        self.stop = Arc::new(AtomicBool::new(false));
        let (stop, conns, target, down) = (
            self.stop.clone(),
            self.conns.clone(),
            self.target.clone(),
            self.down_bytes.clone(),
        );
        self.acceptor = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(ACCEPT_POLL);
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                let _ = client.set_nodelay(true);
                {
                    let mut all = conns.lock().unwrap_or_else(|p| p.into_inner());
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            all.push(c);
                        }
                    }
                }
                pump(&client, &server, None);
                pump(&server, &client, Some(down.clone()));
            }
        }));
    }

    /// Cuts every relayed connection mid-stream (both sockets of each shut
    /// down in both directions); keeps accepting new ones.
    pub fn abort(&self) {
        let mut all = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for s in all.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// The server is down: no more accepting (connections are refused) and
    /// every relayed connection cut.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        self.abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies `from` → `to` on a thread until either side ends.
fn pump(from: &TcpStream, to: &TcpStream, count: Option<Arc<AtomicU64>>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if let Some(c) = &count {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A server that accepts TCP connections and never says a word (a hung
/// server, or a half-dead host behind a load balancer). Accepted sockets
/// are held open until it is dropped.
pub struct SilentServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent server");
        let port = listener.local_addr().expect("local_addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acceptor = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(ACCEPT_POLL),
                }
            }
        });
        SilentServer {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}
