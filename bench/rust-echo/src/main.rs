//! The kernel-limit baseline of bench/run.cjs: a request/response echo on plain
//! tokio UDP, one current-thread runtime per process, no codec, no table beyond
//! one slot per call in flight.
//!
//!   rust-echo server            binds 127.0.0.1:0, prints {"ev":"ready","port":N}
//!   rust-echo client HOST:PORT  prints {"ev":"ready"}, then takes commands on stdin
//!
//! Commands (one per line on stdin): `cpu`, `run INFLIGHT WARMUP_MS DURATION_MS TIMEOUT_MS`, `quit`.
//! Events (JSON lines on stdout): ready, cpu, start, end, result — the same
//! shapes as the Node and Python children of run.cjs.
//!
//! Datagram: type (0 request, 1 response) | 20-byte id (slot u32 LE, generation
//! u32 LE, zeros) | 32-byte payload = 53 bytes, the size of an rpcudp echo
//! request minus its msgpack framing.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const DGRAM: usize = 53;

fn cpu_us() -> (u64, u64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

fn emit(line: &str) {
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn emit_cpu() {
    let (u, s) = cpu_us();
    emit(&format!("{{\"ev\":\"cpu\",\"user\":{u},\"system\":{s}}}"));
}

/// Reads stdin on its own thread; `cpu` is answered right there (getrusage covers every thread).
fn stdin_commands() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let line = line.trim().to_string();
            if line == "cpu" {
                emit_cpu();
            } else if tx.send(line).is_err() {
                break;
            }
        }
        let _ = tx.send("quit".into());
    });
    rx
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("server") => rt.block_on(server()),
        Some("client") => {
            let addr: SocketAddr = args.get(2).expect("client HOST:PORT").parse().expect("HOST:PORT");
            rt.block_on(client(addr))
        }
        _ => {
            eprintln!("usage: rust-echo server | rust-echo client HOST:PORT");
            std::process::exit(2)
        }
    }
}

fn big_buffers(sock: &UdpSocket) {
    // Same request as rpcudp's default (4 MiB); the kernel caps it at rmem_max.
    let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
    let size: libc::c_int = 4 << 20;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, opt, &size as *const _ as *const libc::c_void, std::mem::size_of::<libc::c_int>() as u32);
        }
    }
}

async fn server() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    big_buffers(&sock);
    emit(&format!("{{\"ev\":\"ready\",\"port\":{}}}", sock.local_addr().unwrap().port()));
    let mut cmds = stdin_commands();
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            r = sock.readable() => {
                if r.is_err() { break }
                loop {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if n < 21 || buf[0] != 0 { continue }
                            buf[0] = 1;
                            if sock.try_send_to(&buf[..n], from).is_err() {
                                let _ = sock.send_to(&buf[..n], from).await;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
            }
            c = cmds.recv() => {
                match c.as_deref() { Some("quit") | None => break, _ => {} }
            }
        }
    }
}

struct Slot {
    gen: u32,
    sent: Instant,
    active: bool,
}

fn request(slot: u32, gen: u32, out: &mut [u8; DGRAM]) {
    out[0] = 0;
    out[1..5].copy_from_slice(&slot.to_le_bytes());
    out[5..9].copy_from_slice(&gen.to_le_bytes());
    for (i, b) in out[21..].iter_mut().enumerate() {
        *b = i as u8;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

async fn client(server: SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    big_buffers(&sock);
    sock.connect(server).await.unwrap();
    emit("{\"ev\":\"ready\"}");
    let mut cmds = stdin_commands();
    while let Some(cmd) = cmds.recv().await {
        let parts: Vec<&str> = cmd.split_whitespace().collect();
        match parts.first().copied() {
            Some("quit") => break,
            Some("run") if parts.len() == 5 => {
                let n: [u64; 4] = std::array::from_fn(|i| parts[i + 1].parse().unwrap());
                run(&sock, n[0] as usize, Duration::from_millis(n[1]), Duration::from_millis(n[2]), Duration::from_millis(n[3])).await;
            }
            _ => emit(&format!("{{\"ev\":\"error\",\"message\":\"bad command {cmd:?}\"}}")),
        }
    }
}

async fn run(sock: &UdpSocket, inflight: usize, warmup: Duration, duration: Duration, timeout: Duration) {
    let began = Instant::now();
    let mut slots: Vec<Slot> = (0..inflight).map(|_| Slot { gen: 0, sent: began, active: false }).collect();
    let mut out = [0u8; DGRAM];
    let mut buf = [0u8; 2048];
    let mut lat: Vec<f64> = Vec::with_capacity(1 << 20);
    let (mut measuring, mut running) = (false, true);
    let (mut calls, mut timeouts) = (0u64, 0u64);
    let mut cpu0 = (0, 0);
    let mut cpu1 = (0, 0);
    let mut t_start = began;
    let mut t_end = began;
    let mut outstanding = 0usize;

    async fn send(sock: &UdpSocket, out: &[u8]) {
        if sock.try_send(out).is_err() {
            let _ = sock.send(out).await;
        }
    }

    for i in 0..inflight {
        request(i as u32, 0, &mut out);
        slots[i].sent = Instant::now();
        slots[i].active = true;
        outstanding += 1;
        send(sock, &out).await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while outstanding > 0 {
        tokio::select! {
            r = sock.readable() => {
                if r.is_err() { break }
                loop {
                    let n = match sock.try_recv(&mut buf) {
                        Ok(n) => n,
                        Err(_) => break,
                    };
                    if n < 21 || buf[0] != 1 { continue }
                    let slot = u32::from_le_bytes(buf[1..5].try_into().unwrap()) as usize;
                    let gen = u32::from_le_bytes(buf[5..9].try_into().unwrap());
                    if slot >= inflight || !slots[slot].active || slots[slot].gen != gen { continue }
                    let now = Instant::now();
                    if measuring {
                        calls += 1;
                        lat.push((now - slots[slot].sent).as_secs_f64() * 1e6);
                    }
                    if running {
                        let s = &mut slots[slot];
                        s.gen = s.gen.wrapping_add(1);
                        s.sent = now;
                        request(slot as u32, s.gen, &mut out);
                        send(sock, &out).await;
                    } else {
                        slots[slot].active = false;
                        outstanding -= 1;
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if running && !measuring && now - began >= warmup {
                    measuring = true;
                    t_start = now;
                    cpu0 = cpu_us();
                    emit("{\"ev\":\"start\"}");
                } else if running && measuring && now - t_start >= duration {
                    t_end = now;
                    cpu1 = cpu_us();
                    running = false;
                    measuring = false;
                    emit("{\"ev\":\"end\"}");
                }
                for (i, s) in slots.iter_mut().enumerate() {
                    if s.active && now - s.sent >= timeout {
                        if measuring { timeouts += 1 }
                        if running {
                            s.gen = s.gen.wrapping_add(1);
                            s.sent = now;
                            request(i as u32, s.gen, &mut out);
                            send(sock, &out).await;
                        } else {
                            s.active = false;
                            outstanding -= 1;
                        }
                    }
                }
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let elapsed = (t_end - t_start).as_secs_f64() * 1e3;
    let cpu = (cpu1.0 + cpu1.1).saturating_sub(cpu0.0 + cpu0.1);
    emit(&format!(
        "{{\"ev\":\"result\",\"calls\":{calls},\"elapsedMs\":{elapsed:.3},\"cpuUs\":{cpu},\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1},\"timeouts\":{timeouts},\"errors\":0}}",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0.0)
    ));
}
