//! The loopback TCP floor of one transaction at a time: what the kernel alone costs.
//!
//! `cargo run --release -p twin-io --example tcp_floor -- CONNS RATE SECONDS [PACE_US]`
//!
//! One process, two threads, no Python and no Modbus logic: a responder thread listens on
//! `CONNS` ports and answers every 12-byte request with 31 bytes (the sizes of a Modbus read of
//! 11 holding registers); a client thread keeps one connection per port and sends `RATE`
//! requests a second on each, one at a time (the next only after the previous answer). Both
//! threads turn at most once per `PACE_US` microseconds when busy (default 1000, as the
//! Modbus I/O thread and the paced simulator do; 0 turns on every event). It prints the
//! transactions per second carried and the CPU both threads used (from
//! `/proc/self/task/*/schedstat`, exact): the least any client and server on this machine
//! can spend on that many round trips.

use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const REQUEST: usize = 12;
const ANSWER: usize = 31;

type Res<T> = Result<T, Box<dyn Error>>;

/// CPU seconds used by every thread of this process so far.
fn cpu_s() -> Res<f64> {
    let mut ns = 0_u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let text = std::fs::read_to_string(task?.path().join("schedstat"))?;
        ns += text
            .split_whitespace()
            .next()
            .unwrap_or("0")
            .parse::<u64>()?;
    }
    Ok(ns as f64 / 1e9)
}

fn pace(began: Instant, pace: Duration) {
    if let Some(rest) = pace.checked_sub(began.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// Answers every whole request on every connection, forever.
fn respond(mut listeners: Vec<TcpListener>, every: Duration) -> Res<()> {
    let mut poll = Poll::new()?;
    let n = listeners.len();
    for (i, listener) in listeners.iter_mut().enumerate() {
        poll.registry()
            .register(listener, Token(i), Interest::READABLE)?;
    }
    let mut streams: Vec<Option<(TcpStream, usize)>> = (0..n).map(|_| None).collect();
    let mut events = Events::with_capacity(1024);
    let mut buf = [0_u8; 4096];
    let answer = [0_u8; ANSWER];
    loop {
        poll.poll(&mut events, None)?;
        let began = Instant::now();
        for event in &events {
            let token = event.token().0;
            if token < n {
                while let Ok((mut stream, _)) = listeners[token].accept() {
                    stream.set_nodelay(true)?;
                    poll.registry()
                        .register(&mut stream, Token(n + token), Interest::READABLE)?;
                    streams[token] = Some((stream, 0));
                }
            } else if let Some((stream, got)) = streams[token - n].as_mut() {
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(k) => {
                            *got += k;
                            while *got >= REQUEST {
                                *got -= REQUEST;
                                stream.write_all(&answer)?;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        pace(began, every);
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: tcp_floor CONNS RATE SECONDS [PACE_US]".into());
    }
    let conns: usize = args[0].parse()?;
    let rate: f64 = args[1].parse()?;
    let seconds: f64 = args[2].parse()?;
    let every = Duration::from_micros(args.get(3).map_or(Ok(1000), |a| a.parse())?);
    let mut listeners = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for _ in 0..conns {
        let listener = TcpListener::bind("127.0.0.1:0".parse()?)?;
        addrs.push(listener.local_addr()?);
        listeners.push(listener);
    }
    std::thread::spawn(move || {
        if let Err(err) = respond(listeners, every) {
            eprintln!("tcp_floor: responder: {err}");
        }
    });
    let mut poll = Poll::new()?;
    let mut streams = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let mut stream = TcpStream::connect(*addr)?;
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        streams.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500)); // connected and accepted
    for stream in &streams {
        stream.set_nodelay(true)?;
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    let t0 = Instant::now();
    let mut due: Vec<Instant> = (0..conns)
        .map(|i| t0 + period.mul_f64(i as f64 / conns as f64))
        .collect();
    let (mut busy, mut waiting, mut got) = (vec![false; conns], vec![0_u32; conns], vec![0; conns]);
    let (mut done, mut most_waiting) = (0_u64, 0_u32);
    let mut events = Events::with_capacity(1024);
    let mut buf = [0_u8; 4096];
    let request = [0_u8; REQUEST];
    let cpu0 = cpu_s()?;
    let end = t0 + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(1)))?;
        let began = Instant::now();
        for event in &events {
            let i = event.token().0;
            loop {
                match streams[i].read(&mut buf) {
                    Ok(0) => return Err("the responder closed a connection".into()),
                    Ok(k) => {
                        got[i] += k;
                        while got[i] >= ANSWER {
                            got[i] -= ANSWER;
                            done += 1;
                            busy[i] = false;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let now = Instant::now();
        for i in 0..conns {
            while due[i] <= now {
                waiting[i] += 1;
                due[i] += period;
            }
            most_waiting = most_waiting.max(waiting[i]);
            if !busy[i] && waiting[i] > 0 {
                waiting[i] -= 1;
                busy[i] = true;
                streams[i].write_all(&request)?;
            }
        }
        pace(began, every);
    }
    let cpu = cpu_s()? - cpu0;
    let elapsed = t0.elapsed().as_secs_f64();
    println!(
        "{conns} connections x {rate}/s one at a time, pace {} us: {:.0} transactions/s, \
         {:.2} cores (client + responder), {:.1} us CPU per transaction, most waiting {most_waiting}",
        every.as_micros(),
        done as f64 / elapsed,
        cpu / elapsed,
        cpu / done as f64 * 1e6,
    );
    Ok(())
}
