//! The pass of `bench/engine.py` in Rust alone, phase by phase: where its time goes without
//! Python (no call crossing, no Python objects).
//!
//! 10,000 devices x 10 properties of the bench's model (one holding-register frame of 25
//! registers per device), about 5 % of the values changed per pass. Each phase is timed over
//! `PASSES` passes and the median is printed: ingest (`Engine::ingest_planned`, every device's
//! frame), report (`Engine::report`), DMI (`report_device_status_requests_packed`), MQTT
//! (`twin_messages_packed`), and the sum. Run with `cargo bench -p twin-core --bench pass`.
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark binary: a panic is the failure report

use std::hint::black_box;
use std::time::{Duration, Instant};

use twin_core::encode::{dmi, mqtt};
use twin_core::engine::{Engine, PlannedFrame};
use twin_core::modbus::VisitorSpec;
use twin_core::spec::PropertySpec;
use twin_core::PropertyType;

const DEVICES: usize = 10_000;
const PASSES: usize = 15;
const CHANGED: f64 = 0.05;

/// The bench's model: property type, data type, registers, scale, isSwap, isRegisterSwap.
const MODEL: [(PropertyType, &str, u16, f64, bool, bool); 10] = [
    (PropertyType::Double, "uint16", 1, 0.1, false, false),
    (PropertyType::Int, "int16", 1, 0.0, false, false),
    (PropertyType::Float, "float32", 2, 0.0, false, false),
    (PropertyType::Double, "float64", 4, 0.0, false, false),
    (PropertyType::Int, "int32", 2, 0.0, false, true),
    (PropertyType::Boolean, "boolean", 1, 0.0, false, false),
    (PropertyType::Int, "uint32", 2, 0.0, true, false),
    (PropertyType::Double, "int32", 2, 0.01, false, false),
    (PropertyType::Float, "float", 1, 0.1, false, false),
    (PropertyType::String, "string", 4, 0.0, false, false),
];

/// A xorshift generator: the same frames every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Random register bytes for property `p` (text stays printable).
    fn registers(&mut self, p: usize, out: &mut [u8]) {
        for b in out.iter_mut() {
            *b = self.next() as u8;
        }
        if MODEL[p].0 == PropertyType::String {
            for b in out.iter_mut() {
                *b = b'a' + *b % 26;
            }
        }
        if MODEL[p].0 == PropertyType::Boolean {
            out[0] = 0;
            out[1] &= 1;
        }
    }
}

fn specs() -> (Vec<PropertySpec>, Vec<(usize, usize)>) {
    let mut offset = 0u16;
    let mut specs = Vec::new();
    let mut spans = Vec::new();
    for (i, (ty, dt, registers, scale, swap, register_swap)) in MODEL.into_iter().enumerate() {
        let limit = if dt == "float" || dt == "string" {
            i64::from(registers)
        } else {
            0
        };
        let visitor = VisitorSpec {
            register: "HoldingRegister".into(),
            offset: i64::from(offset),
            limit,
            data_type: dt.into(),
            scale,
            is_swap: swap,
            is_register_swap: register_swap,
        };
        specs.push(PropertySpec {
            name: format!("p{i}"),
            ty,
            visitor: Some(visitor),
            ..PropertySpec::default()
        });
        spans.push((2 * usize::from(offset), 2 * usize::from(registers)));
        offset += registers;
    }
    (specs, spans)
}

/// Ingest and report of unchanged frames only: the cost of a pass where nothing moved.
fn detail(engine: &mut Engine, current: &[Vec<u8>]) {
    let mut ingest = Vec::new();
    let mut report = Vec::new();
    for pass in 0..PASSES {
        let frames: Vec<PlannedFrame<'_>> = current
            .iter()
            .enumerate()
            .map(|(d, frame)| PlannedFrame {
                device: d as u32,
                read: 0,
                frame,
                ts: 1_000_000 + pass as i64,
            })
            .collect();
        let t0 = Instant::now();
        black_box(engine.ingest_planned(&frames).unwrap());
        let t1 = Instant::now();
        black_box(engine.report());
        ingest.push(t1 - t0);
        report.push(t1.elapsed());
    }
    println!(
        "unchanged frames: ingest {:.3} ms, report {:.3} ms",
        median(ingest),
        median(report)
    );
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort_unstable();
    times[times.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let (specs, spans) = specs();
    let frame_len = spans.last().map_or(0, |(at, n)| at + n);
    let mut engine = Engine::new();
    for d in 0..DEVICES {
        engine
            .upsert_device(&format!("bench/d{d:05}"), &specs)
            .unwrap();
    }
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut current = vec![vec![0u8; frame_len]; DEVICES];
    for frame in &mut current {
        for (p, &(at, n)) in spans.iter().enumerate() {
            rng.registers(p, &mut frame[at..at + n]);
        }
    }
    let mut phases: [Vec<Duration>; 5] = Default::default();
    let mut changes = 0;
    for pass in 0..=PASSES {
        if pass > 0 {
            let moved = (CHANGED * (DEVICES * MODEL.len()) as f64) as usize;
            for _ in 0..moved {
                let slot = rng.next() as usize % (DEVICES * MODEL.len());
                let (at, n) = spans[slot % MODEL.len()];
                rng.registers(
                    slot % MODEL.len(),
                    &mut current[slot / MODEL.len()][at..at + n],
                );
            }
        }
        let ts = 1000 * pass as i64;
        let frames: Vec<PlannedFrame<'_>> = current
            .iter()
            .enumerate()
            .map(|(d, frame)| PlannedFrame {
                device: d as u32,
                read: 0,
                frame,
                ts,
            })
            .collect();
        let t0 = Instant::now();
        black_box(engine.ingest_planned(&frames).unwrap());
        let t1 = Instant::now();
        let set = engine.report();
        let t2 = Instant::now();
        let requests = dmi::report_device_status_requests_packed(&set);
        let t3 = Instant::now();
        let mut state = 7;
        let messages = mqtt::twin_messages_packed(&set, 1_700_000_000_000, &mut |out| {
            mqtt::uuid_v4_json(out, &mut state);
        });
        let t4 = Instant::now();
        black_box((&requests, &messages));
        if pass > 0 {
            changes += set.changes.len();
            for (phase, time) in
                phases
                    .iter_mut()
                    .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0])
            {
                phase.push(time);
            }
        }
    }
    if std::env::var_os("PASS_DETAIL").is_some() {
        detail(&mut engine, &current);
    }
    let names = ["ingest", "report", "dmi", "mqtt", "pass"];
    println!(
        "{DEVICES} devices x {} properties, {} changes per pass, median of {PASSES} passes:",
        MODEL.len(),
        changes / PASSES
    );
    for (name, times) in names.iter().zip(phases) {
        println!("  {name:<8} {:>8.3} ms", median(times));
    }
}
