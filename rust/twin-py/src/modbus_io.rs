//! The `ModbusIo` pyclass: one event loop's channel to the Modbus TCP I/O thread of `twin-io`.
//!
//! Calls only buffer commands (no lock, no system call); `flush` hands them over in one wake-up,
//! and `take` returns what finished as plain tuples (see `twinplane.drivers.modbus.tcp`).

use std::os::fd::FromRawFd;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use twin_io::modbus_tcp::{Channel, Event, Loss, Outcome, Part, Request};

/// One event loop's end of the Modbus TCP I/O thread.
#[pyclass(module = "twinplane._engine")]
pub struct ModbusIo {
    channel: Channel,
}

fn timeout(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| PyValueError::new_err(format!("timeout must be positive, not {seconds}")))
}

fn loss_fields(loss: &Loss) -> (u8, String) {
    match loss {
        Loss::Closed => (0, String::new()),
        Loss::Eof => (1, String::new()),
        Loss::Error(text) => (2, text.clone()),
        Loss::Garbled(text) => (3, text.clone()),
        Loss::Gone => (4, String::new()),
    }
}

fn event(py: Python<'_>, event: Event) -> PyResult<Bound<'_, PyTuple>> {
    match event {
        Event::Done {
            token,
            sent,
            outcome,
        } => match outcome {
            Outcome::Frames(frames) => {
                let list = PyList::new(py, frames.iter().map(|f| PyBytes::new(py, f)))?;
                (0_u8, token, sent, list).into_pyobject(py)
            }
            Outcome::Timeout {
                part,
                pipeline_lost,
            } => (1_u8, token, sent, part, pipeline_lost).into_pyobject(py),
            Outcome::Answer {
                part,
                unit,
                tid,
                pdu,
            } => (2_u8, token, sent, part, unit, tid, PyBytes::new(py, &pdu)).into_pyobject(py),
            Outcome::Truncated { part, tid, bytes } => {
                (3_u8, token, sent, part, tid, bytes).into_pyobject(py)
            }
            Outcome::Garbled {
                part,
                tid,
                unit,
                message,
            } => (4_u8, token, sent, part, tid, unit, message).into_pyobject(py),
            Outcome::Lost(loss) => {
                let (kind, text) = loss_fields(&loss);
                (5_u8, token, sent, kind, text).into_pyobject(py)
            }
        },
        Event::Closed { conn, loss } => {
            let (kind, text) = loss_fields(&loss);
            (6_u8, conn, 0_u32, kind, text).into_pyobject(py)
        }
        Event::Unknown { conn, count } => (7_u8, conn, count).into_pyobject(py),
    }
}

#[pymethods]
impl ModbusIo {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self {
            channel: Channel::new().map_err(|e| PyOSError::new_err(e.to_string()))?,
        })
    }

    /// The descriptor that becomes readable when `take` has something.
    fn fileno(&self) -> i32 {
        self.channel.fileno()
    }

    /// Takes over a connected TCP socket's descriptor (the caller gives it up: `detach()`).
    ///
    /// `limit` is the requests in flight at once (`1`: one at a time; `0`: no limit).
    fn attach(&mut self, fd: i32, limit: u32) -> PyResult<u64> {
        if fd < 0 {
            return Err(PyValueError::new_err(format!("not a descriptor: {fd}")));
        }
        // SAFETY: the caller detached `fd` from its socket object, so it is an open TCP socket
        // descriptor that nothing else owns or closes from now on.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        self.channel
            .attach(stream, limit)
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// Queues a poll: `(function, address, count, data bytes)` per read; ahead of the queued
    /// polls when `first` (a read a method call asked for).
    #[pyo3(signature = (conn, token, unit, reads, timeout_s, first = false))]
    fn read(
        &mut self,
        conn: u64,
        token: u64,
        unit: u8,
        reads: Vec<(u8, u16, u16, u8)>,
        timeout_s: f64,
        first: bool,
    ) -> PyResult<()> {
        let parts = reads
            .into_iter()
            .map(|(function, address, count, size)| Part::Read {
                function,
                address,
                count,
                size,
            })
            .collect();
        let request = Request {
            token,
            unit,
            parts,
            timeout: timeout(timeout_s)?,
        };
        self.channel.submit(conn, request, first);
        Ok(())
    }

    /// Queues one PDU (a write), ahead of queued polls when `first`.
    #[pyo3(signature = (conn, token, unit, pdu, timeout_s, first = true))]
    fn request(
        &mut self,
        conn: u64,
        token: u64,
        unit: u8,
        pdu: Vec<u8>,
        timeout_s: f64,
        first: bool,
    ) -> PyResult<()> {
        if pdu.is_empty() || pdu.len() > 253 {
            return Err(PyValueError::new_err(format!(
                "a PDU is 1..253 bytes, not {}",
                pdu.len()
            )));
        }
        let request = Request {
            token,
            unit,
            parts: vec![Part::Raw(pdu)],
            timeout: timeout(timeout_s)?,
        };
        self.channel.submit(conn, request, first);
        Ok(())
    }

    /// Changes a connection's window (`0`: no limit).
    fn set_limit(&mut self, conn: u64, limit: u32) {
        self.channel.set_limit(conn, limit);
    }

    /// Closes a connection (its requests are lost, then it reports closed).
    fn close(&mut self, conn: u64) {
        self.channel.close(conn);
    }

    /// Hands the queued commands to the I/O thread.
    fn flush(&mut self) -> PyResult<()> {
        self.channel
            .flush()
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// What finished since the last call, as tuples (the first item says what).
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = self.channel.take();
        let list = PyList::empty(py);
        for e in events {
            list.append(event(py, e)?)?;
        }
        Ok(list)
    }
}
