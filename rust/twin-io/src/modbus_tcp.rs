//! Modbus TCP connections driven by one I/O thread.
//!
//! A caller (one per event loop) owns a [`Channel`]. It hands the channel connected sockets
//! ([`Channel::attach`]) and [`Request`]s: a poll of several reads of one unit, or one write.
//! Commands are buffered in the channel and go to the thread in one batch on
//! [`Channel::flush`] (one wake-up per batch). The thread:
//!
//! - keeps each connection's queue of request parts (a write goes first) and a window of at
//!   most `limit` parts in flight (`1`: one transaction at a time, the next part written from
//!   the previous one's answer; `0`: no limit);
//! - matches answers by transaction id in any order; a read answered with exactly the data
//!   asked for is kept; every other answer (an exception, a wrong echo, a write's echo) ends
//!   its request with [`Outcome::Answer`] and the answer's bytes, for the caller to judge;
//! - times each part out `timeout` after it was written ([`Outcome::Timeout`]); a request that
//!   had two parts in flight at once and lost a later one after an earlier one was answered
//!   says so (`pipeline_lost`: the device seems to take one transaction at a time);
//! - ends a request at its first failure; its queued parts are skipped, its parts in flight
//!   keep their place in the window until answered (counted as unknown) or timed out, as the
//!   device is still working on them;
//! - resets a connection whose stream cannot be framed (protocol id not 0, a length outside
//!   2..254): the request the header names ends with [`Outcome::Garbled`], the others with
//!   [`Outcome::Lost`]; a connection closed mid-frame ends the request it names with
//!   [`Outcome::Truncated`].
//!
//! Finished requests and connection events come back through [`Channel::take`]; the channel's
//! [`Channel::fileno`] becomes readable when there are some.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

const WAKER: Token = Token(0);
const MBAP_SIZE: usize = 7;
const MIN_MBAP_LENGTH: u16 = 2;
const MAX_MBAP_LENGTH: u16 = 254;
const READ_CHUNK: usize = 64 * 1024;
/// The shortest time between two turns of a busy I/O thread.
///
/// Waking a thread costs more than the work of a Modbus answer (measured on a 2-core VM: about
/// 25 µs of CPU for a wake from another core, against a few µs to frame an answer and write the
/// next request). A thread woken for every answer of 30,000 a second spends most of a core
/// waking. So a turn that did something is followed by a pause until this much time has passed
/// since it began: the answers that arrive meanwhile wait in the kernel and are taken in the
/// next turn together, and the event loop is rung once for all of them. Each step of a
/// one-at-a-time chain waits at most this long; an idle thread still wakes at once.
pub const PACE: Duration = Duration::from_millis(1);

/// One part of a request: a read, or a raw PDU (a write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A read (functions 1-4) of `count` bits or registers from `address`; `size` is the
    /// data bytes the answer must carry.
    Read {
        /// The function code.
        function: u8,
        /// The first address.
        address: u16,
        /// Bits or registers.
        count: u16,
        /// Data bytes of the answer.
        size: u8,
    },
    /// A PDU sent as it is; any framed answer ends the request with [`Outcome::Answer`].
    Raw(Vec<u8>),
}

impl Part {
    fn encode(&self, tid: u16, unit: u8, out: &mut Vec<u8>) {
        out.extend_from_slice(&tid.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        match self {
            Part::Read {
                function,
                address,
                count,
                ..
            } => {
                out.extend_from_slice(&[0, 6, unit, *function]);
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
            }
            Part::Raw(pdu) => {
                out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
                out.push(unit);
                out.extend_from_slice(pdu);
            }
        }
    }
}

/// A poll of one unit (several reads) or one write: finished by one [`Event::Done`].
#[derive(Debug, Clone)]
pub struct Request {
    /// The caller's id for it, unique among the channel's unfinished requests.
    pub token: u64,
    /// The unit id.
    pub unit: u8,
    /// Its parts, sent in order.
    pub parts: Vec<Part>,
    /// How long each part may wait for its answer once written.
    pub timeout: Duration,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// The caller closed it.
    Closed,
    /// The device closed it.
    Eof,
    /// A socket error.
    Error(String),
    /// A header that cannot be framed (the message says which).
    Garbled(String),
    /// The connection was not there (closed before the request reached the thread).
    Gone,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every read answered: each one's data bytes, in order.
    Frames(Vec<Vec<u8>>),
    /// A part got no answer in time.
    Timeout {
        /// Which part.
        part: usize,
        /// Two parts were in flight at once and an earlier one was answered.
        pipeline_lost: bool,
    },
    /// A part got an answer that is not the plain read answer asked for (or is a write's).
    Answer {
        /// Which part.
        part: usize,
        /// The answer's unit id.
        unit: u8,
        /// Its transaction id.
        tid: u16,
        /// Its PDU.
        pdu: Vec<u8>,
    },
    /// The connection closed in the middle of this part's answer.
    Truncated {
        /// Which part.
        part: usize,
        /// Its transaction id.
        tid: u16,
        /// Bytes of the frame received.
        bytes: usize,
    },
    /// This part's answer had a header that cannot be framed; the connection was reset.
    Garbled {
        /// Which part.
        part: usize,
        /// Its transaction id.
        tid: u16,
        /// The header's unit id.
        unit: u8,
        /// What is wrong with the header.
        message: String,
    },
    /// The connection ended before the request did.
    Lost(Loss),
}

/// What the I/O thread hands a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request finished.
    Done {
        /// The request's token.
        token: u64,
        /// Parts written to the wire.
        sent: u32,
        /// How it ended.
        outcome: Outcome,
    },
    /// A connection ended (after the `Done` of each request it carried).
    Closed {
        /// The connection's id.
        conn: u64,
        /// Why.
        loss: Loss,
    },
    /// Answers that matched no request in flight (late, or a wrong transaction id).
    Unknown {
        /// The connection's id.
        conn: u64,
        /// How many.
        count: u32,
    },
}

/// Where the thread puts a channel's events, and the bell it rings.
struct Outbox {
    events: Mutex<Vec<Event>>,
    rung: AtomicBool,
    bell: UnixStream,
}

impl Outbox {
    fn push(&self, event: Event) {
        lock(&self.events).push(event);
    }

    fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            // a full socket buffer means a byte is there already: the reader wakes anyway
            let _ = (&self.bell).write(&[1]);
        }
    }
}

enum Command {
    Attach {
        conn: u64,
        channel: u64,
        outbox: Arc<Outbox>,
        stream: TcpStream,
        limit: u32,
    },
    Submit {
        conn: u64,
        outbox: Arc<Outbox>,
        request: Request,
        first: bool,
    },
    SetLimit {
        conn: u64,
        limit: u32,
    },
    Close {
        conn: u64,
    },
    DropChannel {
        channel: u64,
    },
}

struct Shared {
    commands: Mutex<Vec<Command>>,
    waker: Waker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static HUB: Mutex<Option<(u32, Arc<Shared>)>> = Mutex::new(None);

/// The process's I/O thread, started on first use (again in a forked child).
fn hub() -> io::Result<Arc<Shared>> {
    let mut slot = lock(&HUB);
    let pid = std::process::id();
    if let Some((owner, shared)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(shared));
        }
    }
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let shared = Arc::new(Shared {
        commands: Mutex::new(Vec::new()),
        waker,
    });
    let thread_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("twinplane-modbus-io".into())
        .spawn(move || IoThread::new(poll, thread_shared).run())?;
    *slot = Some((pid, Arc::clone(&shared)));
    Ok(shared)
}

/// One caller's end: its connections, its commands not yet sent, its events.
pub struct Channel {
    id: u64,
    outbox: Arc<Outbox>,
    bell: UnixStream,
    shared: Arc<Shared>,
    pending: Vec<Command>,
}

impl Channel {
    /// A new channel (starts the I/O thread on first use).
    pub fn new() -> io::Result<Self> {
        let (bell, ringer) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        ringer.set_nonblocking(true)?;
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            outbox: Arc::new(Outbox {
                events: Mutex::new(Vec::new()),
                rung: AtomicBool::new(false),
                bell: ringer,
            }),
            bell,
            shared: hub()?,
            pending: Vec::new(),
        })
    }

    /// The descriptor that becomes readable when events wait (for `loop.add_reader`).
    pub fn fileno(&self) -> RawFd {
        self.bell.as_raw_fd()
    }

    /// Hands a connected socket to the thread; returns the connection's id.
    ///
    /// `limit` is the parts in flight at once (`1`: one transaction at a time; `0`: no limit).
    pub fn attach(&mut self, stream: std::net::TcpStream, limit: u32) -> io::Result<u64> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let conn = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.pending.push(Command::Attach {
            conn,
            channel: self.id,
            outbox: Arc::clone(&self.outbox),
            stream: TcpStream::from_std(stream),
            limit,
        });
        Ok(conn)
    }

    /// Queues a request on a connection (a `first` one ahead of the queued parts).
    pub fn submit(&mut self, conn: u64, request: Request, first: bool) {
        self.pending.push(Command::Submit {
            conn,
            outbox: Arc::clone(&self.outbox),
            request,
            first,
        });
    }

    /// Changes a connection's window.
    pub fn set_limit(&mut self, conn: u64, limit: u32) {
        self.pending.push(Command::SetLimit { conn, limit });
    }

    /// Closes a connection: its requests end with [`Loss::Closed`], then [`Event::Closed`].
    pub fn close(&mut self, conn: u64) {
        self.pending.push(Command::Close { conn });
    }

    /// Whether commands wait for [`Channel::flush`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends the buffered commands to the thread (one wake-up).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        lock(&self.shared.commands).append(&mut self.pending);
        self.shared.waker.wake()
    }

    /// The events so far (and silences the bell until the next ones).
    pub fn take(&self) -> Vec<Event> {
        let mut sink = [0_u8; 64];
        while matches!((&self.bell).read(&mut sink), Ok(n) if n > 0) {}
        let mut events = lock(&self.outbox.events);
        self.outbox.rung.store(false, Ordering::Release);
        std::mem::take(&mut *events)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.pending.clear();
        self.pending.push(Command::DropChannel { channel: self.id });
        let _ = self.flush();
    }
}

/// A part in flight.
struct Flight {
    tid: u16,
    token: u64,
    part: usize,
    seq: u64,
}

/// A request not finished yet.
struct Active {
    request: Request,
    frames: Vec<Vec<u8>>,
    answered: usize,
    flying: usize,
    pipelined: bool,
    sent: u32,
}

struct Conn {
    channel: u64,
    outbox: Arc<Outbox>,
    stream: TcpStream,
    limit: u32,
    queue: VecDeque<(u64, usize)>,
    flights: Vec<Flight>,
    active: HashMap<u64, Active>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tid: u16,
    writable: bool,
    /// Listed in [`IoThread::touched`] for this turn.
    touched: bool,
}

impl Conn {
    fn finish(&mut self, token: u64, outcome: Outcome) {
        if let Some(active) = self.active.remove(&token) {
            self.outbox.push(Event::Done {
                token,
                sent: active.sent,
                outcome,
            });
        }
    }

    fn next_tid(&mut self) -> u16 {
        let mut tid = self.tid.wrapping_add(1);
        while self.flights.iter().any(|f| f.tid == tid) {
            tid = tid.wrapping_add(1);
        }
        self.tid = tid;
        tid
    }

    /// Writes queued parts while the window has room.
    fn pump(&mut self, conn: u64, now: Instant, seq: &mut u64, deadlines: &mut Deadlines) {
        let mut room = if self.limit == 0 {
            usize::MAX
        } else {
            (self.limit as usize).saturating_sub(self.flights.len())
        };
        while room > 0 {
            let Some((token, part)) = self.queue.pop_front() else {
                break;
            };
            if !self.active.contains_key(&token) {
                continue; // its request ended while this part waited
            }
            let tid = self.next_tid();
            let Some(active) = self.active.get_mut(&token) else {
                continue;
            };
            active.request.parts[part].encode(tid, active.request.unit, &mut self.tx);
            *seq += 1;
            self.flights.push(Flight {
                tid,
                token,
                part,
                seq: *seq,
            });
            deadlines.push(Reverse((now + active.request.timeout, *seq, conn, tid)));
            if active.flying > 0 {
                active.pipelined = true;
            }
            active.flying += 1;
            active.sent += 1;
            room -= 1;
        }
    }

    /// Splits the received bytes into answers; `Err` when the stream cannot be framed.
    fn parse(&mut self, conn: u64) -> Result<(), Loss> {
        let data = std::mem::take(&mut self.rx);
        let end = data.len();
        let mut pos = 0;
        let mut unknown = 0_u32;
        let mut result = Ok(());
        while end - pos >= MBAP_SIZE {
            let tid = u16::from_be_bytes([data[pos], data[pos + 1]]);
            let protocol = u16::from_be_bytes([data[pos + 2], data[pos + 3]]);
            let length = u16::from_be_bytes([data[pos + 4], data[pos + 5]]);
            let unit = data[pos + 6];
            if protocol != 0 || !(MIN_MBAP_LENGTH..=MAX_MBAP_LENGTH).contains(&length) {
                let message = format!("bad MBAP header: protocol id {protocol}, length {length}");
                if let Some(flight) = self.take_flight(tid) {
                    self.finish(
                        flight.token,
                        Outcome::Garbled {
                            part: flight.part,
                            tid,
                            unit,
                            message: message.clone(),
                        },
                    );
                }
                result = Err(Loss::Garbled(message));
                pos = end;
                break;
            }
            let stop = pos + 6 + length as usize;
            if stop > end {
                break;
            }
            let pdu = &data[pos + MBAP_SIZE..stop];
            match self.take_flight(tid) {
                Some(flight) if self.active.contains_key(&flight.token) => {
                    self.answered(&flight, unit, tid, pdu);
                }
                _ => unknown += 1,
            }
            pos = stop;
        }
        if pos < end {
            self.rx = data[pos..].to_vec();
        }
        if unknown > 0 {
            self.outbox.push(Event::Unknown {
                conn,
                count: unknown,
            });
        }
        result
    }

    fn take_flight(&mut self, tid: u16) -> Option<Flight> {
        let index = self.flights.iter().position(|f| f.tid == tid)?;
        Some(self.flights.swap_remove(index))
    }

    fn answered(&mut self, flight: &Flight, unit: u8, tid: u16, pdu: &[u8]) {
        let Some(active) = self.active.get_mut(&flight.token) else {
            return;
        };
        active.flying -= 1;
        if let Part::Read { function, size, .. } = active.request.parts[flight.part] {
            if unit == active.request.unit
                && pdu.len() == size as usize + 2
                && pdu[0] == function
                && pdu[1] == size
            {
                active.frames[flight.part] = pdu[2..].to_vec();
                active.answered += 1;
                if active.answered == active.request.parts.len() {
                    let frames = std::mem::take(&mut active.frames);
                    self.finish(flight.token, Outcome::Frames(frames));
                }
                return;
            }
        }
        self.finish(
            flight.token,
            Outcome::Answer {
                part: flight.part,
                unit,
                tid,
                pdu: pdu.to_vec(),
            },
        );
    }

    /// Writes what is buffered; `Err` when the socket failed.
    fn write_out(&mut self, registry: &mio::Registry, token: Token) -> Result<(), Loss> {
        let mut written = 0;
        while written < self.tx.len() {
            match self.stream.write(&self.tx[written..]) {
                Ok(0) => return Err(Loss::Error("the socket took no bytes".into())),
                Ok(n) => written += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(Loss::Error(err.to_string())),
            }
        }
        self.tx.drain(..written);
        let want = !self.tx.is_empty();
        if want != self.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry
                .reregister(&mut self.stream, token, interest)
                .map_err(|err| Loss::Error(err.to_string()))?;
            self.writable = want;
        }
        Ok(())
    }
}

type Deadlines = BinaryHeap<Reverse<(Instant, u64, u64, u16)>>;

struct IoThread {
    poll: Poll,
    shared: Arc<Shared>,
    conns: HashMap<u64, Conn>,
    deadlines: Deadlines,
    seq: u64,
    /// Connections to pump and write at the end of this turn.
    touched: Vec<u64>,
    /// Channels to ring at the end of this turn.
    ring: Vec<Arc<Outbox>>,
}

impl IoThread {
    fn new(poll: Poll, shared: Arc<Shared>) -> Self {
        Self {
            poll,
            shared,
            conns: HashMap::new(),
            deadlines: BinaryHeap::new(),
            seq: 0,
            touched: Vec::new(),
            ring: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0_u8; READ_CHUNK];
        loop {
            let timeout = self.next_deadline();
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() != ErrorKind::Interrupted {
                    std::thread::sleep(Duration::from_millis(10)); // never spin on a broken poll
                }
                continue;
            }
            let began = Instant::now();
            for event in &events {
                match event.token() {
                    WAKER => self.commands(),
                    Token(id) => {
                        let conn = id as u64;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(conn, &mut buf);
                        }
                        if event.is_writable() {
                            self.touch(conn);
                        }
                    }
                }
            }
            self.expire(Instant::now());
            self.finish_turn();
            if !events.is_empty() {
                // a busy thread turns at most once per PACE (see there)
                if let Some(rest) = PACE.checked_sub(began.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }
    }

    fn touch(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.touched {
                c.touched = true;
                self.touched.push(conn);
            }
        }
    }

    fn ring_later(&mut self, outbox: &Arc<Outbox>) {
        if !self.ring.iter().any(|o| Arc::ptr_eq(o, outbox)) {
            self.ring.push(Arc::clone(outbox));
        }
    }

    /// The time to the earliest deadline still in flight (stale ones dropped on the way).
    fn next_deadline(&mut self) -> Option<Duration> {
        while let Some(Reverse((at, seq, conn, tid))) = self.deadlines.peek().copied() {
            let live = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.flights.iter().any(|f| f.tid == tid && f.seq == seq));
            if live {
                return Some(at.saturating_duration_since(Instant::now()));
            }
            self.deadlines.pop();
        }
        None
    }

    fn commands(&mut self) {
        let commands = std::mem::take(&mut *lock(&self.shared.commands));
        for command in commands {
            match command {
                Command::Attach {
                    conn,
                    channel,
                    outbox,
                    mut stream,
                    limit,
                } => {
                    if let Err(err) = self.poll.registry().register(
                        &mut stream,
                        Token(conn as usize),
                        Interest::READABLE,
                    ) {
                        outbox.push(Event::Closed {
                            conn,
                            loss: Loss::Error(err.to_string()),
                        });
                        self.ring_later(&outbox);
                        continue;
                    }
                    self.conns.insert(
                        conn,
                        Conn {
                            channel,
                            outbox,
                            stream,
                            limit,
                            queue: VecDeque::new(),
                            flights: Vec::new(),
                            active: HashMap::new(),
                            rx: Vec::new(),
                            tx: Vec::new(),
                            tid: 0,
                            writable: false,
                            touched: false,
                        },
                    );
                }
                Command::Submit {
                    conn,
                    outbox,
                    request,
                    first,
                } => self.submit(conn, &outbox, request, first),
                Command::SetLimit { conn, limit } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.limit = limit;
                        self.touch(conn);
                    }
                }
                Command::Close { conn } => self.lose(conn, Loss::Closed),
                Command::DropChannel { channel } => {
                    let gone: Vec<u64> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.channel == channel)
                        .map(|(id, _)| *id)
                        .collect();
                    for conn in gone {
                        if let Some(mut c) = self.conns.remove(&conn) {
                            let _ = self.poll.registry().deregister(&mut c.stream);
                        }
                    }
                }
            }
        }
    }

    fn submit(&mut self, conn: u64, outbox: &Arc<Outbox>, request: Request, first: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            outbox.push(Event::Done {
                token: request.token,
                sent: 0,
                outcome: Outcome::Lost(Loss::Gone),
            });
            self.ring_later(outbox);
            return;
        };
        let token = request.token;
        let parts = request.parts.len();
        if parts == 0 {
            outbox.push(Event::Done {
                token,
                sent: 0,
                outcome: Outcome::Frames(Vec::new()),
            });
            self.ring_later(outbox);
            return;
        }
        if first {
            for part in (0..parts).rev() {
                c.queue.push_front((token, part));
            }
        } else {
            c.queue.extend((0..parts).map(|part| (token, part)));
        }
        c.active.insert(
            token,
            Active {
                request,
                frames: vec![Vec::new(); parts],
                answered: 0,
                flying: 0,
                pipelined: false,
                sent: 0,
            },
        );
        self.touch(conn);
    }

    fn read(&mut self, conn: u64, buf: &mut [u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut loss = None;
        let mut got = false;
        loop {
            match c.stream.read(buf) {
                Ok(0) => {
                    loss = Some(Loss::Eof);
                    break;
                }
                Ok(n) => {
                    c.rx.extend_from_slice(&buf[..n]);
                    got = true;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    loss = Some(Loss::Error(err.to_string()));
                    break;
                }
            }
        }
        if got {
            if let Err(garbled) = c.parse(conn) {
                loss = Some(garbled);
            }
            let outbox = Arc::clone(&c.outbox);
            self.ring_later(&outbox);
            self.touch(conn);
        }
        if let Some(loss) = loss {
            self.lose(conn, loss);
        }
    }

    /// Ends a connection: a frame cut short fails its request, the others are lost.
    fn lose(&mut self, conn: u64, loss: Loss) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        if matches!(loss, Loss::Eof | Loss::Error(_)) && c.rx.len() >= 2 {
            let tid = u16::from_be_bytes([c.rx[0], c.rx[1]]);
            if let Some(flight) = c.take_flight(tid) {
                let bytes = c.rx.len();
                c.finish(
                    flight.token,
                    Outcome::Truncated {
                        part: flight.part,
                        tid,
                        bytes,
                    },
                );
            }
        }
        let tokens: Vec<u64> = c.active.keys().copied().collect();
        for token in tokens {
            c.finish(token, Outcome::Lost(loss.clone()));
        }
        c.outbox.push(Event::Closed { conn, loss });
        let outbox = Arc::clone(&c.outbox);
        self.ring_later(&outbox);
    }

    /// Times out the parts past their deadline.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, seq, conn, tid))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            let Some(index) = c.flights.iter().position(|f| f.tid == tid && f.seq == seq) else {
                continue; // answered already
            };
            let flight = c.flights.swap_remove(index);
            if let Some(active) = c.active.get_mut(&flight.token) {
                active.flying -= 1;
                let pipeline_lost = active.pipelined && active.answered > 0;
                c.finish(
                    flight.token,
                    Outcome::Timeout {
                        part: flight.part,
                        pipeline_lost,
                    },
                );
                let outbox = Arc::clone(&c.outbox);
                self.ring_later(&outbox);
            }
            self.touch(conn);
        }
    }

    /// Pumps and writes every connection touched this turn, then rings the channels.
    fn finish_turn(&mut self) {
        let now = Instant::now();
        let touched = std::mem::take(&mut self.touched);
        for conn in &touched {
            let Some(c) = self.conns.get_mut(conn) else {
                continue;
            };
            c.touched = false;
            c.pump(*conn, now, &mut self.seq, &mut self.deadlines);
            if c.tx.is_empty() && !c.writable {
                continue;
            }
            if let Err(loss) = c.write_out(self.poll.registry(), Token(*conn as usize)) {
                self.lose(*conn, loss);
            }
        }
        self.touched = touched;
        self.touched.clear();
        for outbox in self.ring.drain(..) {
            outbox.ring();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Channel, u64, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let mut channel = Channel::new().expect("channel");
        let conn = channel.attach(client, 1).expect("attach");
        (channel, conn, server)
    }

    fn wait(channel: &Channel, count: usize) -> Vec<Event> {
        let mut out = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        while out.len() < count && Instant::now() < until {
            out.extend(channel.take());
            std::thread::sleep(Duration::from_millis(1));
        }
        out
    }

    fn read_request(server: &mut std::net::TcpStream) -> Vec<u8> {
        let mut header = [0_u8; 6];
        server.read_exact(&mut header).expect("header");
        let length = u16::from_be_bytes([header[4], header[5]]) as usize;
        let mut rest = vec![0_u8; length];
        server.read_exact(&mut rest).expect("body");
        [header.to_vec(), rest].concat()
    }

    #[test]
    fn one_at_a_time_chains_the_parts_of_a_poll() {
        let (mut channel, conn, mut server) = pair();
        let read = |address| Part::Read {
            function: 3,
            address,
            count: 1,
            size: 2,
        };
        channel.submit(
            conn,
            Request {
                token: 7,
                unit: 5,
                parts: vec![read(0), read(10)],
                timeout: Duration::from_secs(2),
            },
            false,
        );
        channel.flush().expect("flush");
        for value in [0x0102_u16, 0x0304] {
            let request = read_request(&mut server);
            assert_eq!(&request[6..8], &[5, 3]);
            // nothing else is written before this one is answered
            server.set_nonblocking(true).expect("nb");
            let mut probe = [0_u8; 1];
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                server.read(&mut probe).is_err(),
                "a second request was pipelined"
            );
            server.set_nonblocking(false).expect("b");
            let mut answer = request[..2].to_vec();
            answer.extend_from_slice(&[0, 0, 0, 5, 5, 3, 2]);
            answer.extend_from_slice(&value.to_be_bytes());
            server.write_all(&answer).expect("answer");
        }
        let events = wait(&channel, 1);
        assert_eq!(
            events,
            vec![Event::Done {
                token: 7,
                sent: 2,
                outcome: Outcome::Frames(vec![vec![1, 2], vec![3, 4]]),
            }]
        );
    }

    #[test]
    fn a_silent_part_times_out_and_the_queue_moves_on() {
        let (mut channel, conn, mut server) = pair();
        let request = |token| Request {
            token,
            unit: 1,
            parts: vec![Part::Read {
                function: 1,
                address: 0,
                count: 8,
                size: 1,
            }],
            timeout: Duration::from_millis(50),
        };
        channel.submit(conn, request(1), false);
        channel.submit(conn, request(2), false);
        channel.flush().expect("flush");
        let first = read_request(&mut server);
        let second = read_request(&mut server); // written after the first timed out
        assert_ne!(first[..2], second[..2]);
        let mut answer = second[..2].to_vec();
        answer.extend_from_slice(&[0, 0, 0, 4, 1, 1, 1, 0xA5]);
        server.write_all(&answer).expect("answer");
        let events = wait(&channel, 2);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events.contains(&Event::Done {
            token: 1,
            sent: 1,
            outcome: Outcome::Timeout {
                part: 0,
                pipeline_lost: false
            },
        }));
        assert!(events.contains(&Event::Done {
            token: 2,
            sent: 1,
            outcome: Outcome::Frames(vec![vec![0xA5]]),
        }));
    }

    #[test]
    fn a_garbled_header_resets_the_connection() {
        let (mut channel, conn, mut server) = pair();
        channel.submit(
            conn,
            Request {
                token: 3,
                unit: 1,
                parts: vec![Part::Raw(vec![6, 0, 1, 0, 9])],
                timeout: Duration::from_secs(2),
            },
            true,
        );
        channel.flush().expect("flush");
        let request = read_request(&mut server);
        let mut answer = request[..2].to_vec();
        answer.extend_from_slice(&[0, 9, 0, 6, 1, 6, 0, 1, 0, 9]);
        server.write_all(&answer).expect("answer");
        let events = wait(&channel, 2);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(
            &events[0],
            Event::Done { token: 3, outcome: Outcome::Garbled { part: 0, message, .. }, .. }
                if message == "bad MBAP header: protocol id 9, length 6"
        ));
        assert!(matches!(
            &events[1],
            Event::Closed {
                loss: Loss::Garbled(_),
                ..
            }
        ));
    }
}
