//! twinplane's device I/O outside the Python interpreter.
//!
//! One thread per process drives every Modbus TCP connection of every [`modbus_tcp::Channel`]:
//! it writes each connection's next request from the previous one's reply (one transaction at
//! a time) or keeps a window of them in flight (pipelining), matches answers by transaction id,
//! times requests out, and hands each finished request (a poll of several reads, or one write)
//! to its channel as one [`modbus_tcp::Event`]. A channel rings one byte on a socket when it
//! has events, so an event loop (asyncio's) wakes once for many answers.
//!
//! The thread knows framing and matching only: what an unexpected answer means (an exception
//! code, a wrong echo) is left to the caller, which gets the answer's bytes.

pub mod modbus_tcp;
