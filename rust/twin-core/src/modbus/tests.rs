//! Unit and property tests of the Modbus codec.
#![allow(clippy::needless_pass_by_value)]
use super::*;
use crate::value::Value;
use proptest::collection::vec;
use proptest::prelude::*;
use PropertyType::{Boolean, Bytes, Double, Float, Int, String};

const H: &str = "HoldingRegister";
const C: &str = "CoilRegister";

fn spec(register: &str, offset: i64, limit: i64, dt: &str, scale: f64) -> VisitorSpec {
    let (register, data_type) = (register.to_owned(), dt.to_owned());
    VisitorSpec {
        register,
        offset,
        limit,
        data_type,
        scale,
        ..VisitorSpec::default()
    }
}

fn compile(register: &str, offset: i64, limit: i64, dt: &str, ty: PropertyType) -> Visitor {
    Visitor::compile(&spec(register, offset, limit, dt, 0.0), ty).unwrap()
}

fn scaled(dt: &str, scale: f64, ty: PropertyType) -> Visitor {
    Visitor::compile(&spec(H, 0, 0, dt, scale), ty).unwrap()
}

fn regs(offset: u16, words: &[u16]) -> WriteOp {
    WriteOp::Registers {
        offset,
        words: words.to_vec(),
    }
}

fn coils(offset: u16, bits: &[bool]) -> WriteOp {
    WriteOp::Coils {
        offset,
        bits: bits.to_vec(),
    }
}

fn short(e: Error) -> (usize, usize) {
    match e {
        Error::ShortFrame { needed, got, .. } => (needed, got),
        other => panic!("{other}"),
    }
}

fn expected(e: Error) -> std::string::String {
    match e {
        Error::TypeMismatch { expected, .. } => expected,
        Error::OutOfRange { data_type, .. } => data_type,
        other => panic!("{other}"),
    }
}

#[test]
fn register_kinds() {
    for k in RegisterKind::ALL {
        assert_eq!(RegisterKind::parse(k.as_str()).unwrap(), k);
    }
    assert_eq!(
        RegisterKind::parse("holdingregister").unwrap(),
        RegisterKind::Holding
    );
    let codes = RegisterKind::ALL.map(RegisterKind::read_function);
    assert_eq!(codes, [1, 2, 4, 3]);
    let maxes = (
        RegisterKind::Coil.max_read(),
        RegisterKind::Input.max_read(),
    );
    assert_eq!(maxes, (2000, 125));
    let e = RegisterKind::parse("Holding").unwrap_err();
    assert_eq!(e.path(), Some("visitors.configData.register"));
    assert!(e.to_string().contains("DiscreteInputRegister"));
    assert!(std::mem::size_of::<Visitor>() <= 24);
}

/// Asserts that `v` decodes `frame` (read from the visitor's offset) to `want`.
fn check(v: &Visitor, ty: PropertyType, frame: &[u8], want: Value) {
    assert_eq!(v.decode(ty, v.offset, frame).unwrap(), want, "{v:?}");
}

/// Asserts the write of `value` and its function code.
fn check_write(v: &Visitor, value: Value, function: u8, want: WriteOp) {
    let op = v.encode(&value).unwrap();
    assert_eq!((op.function(), op), (function, want));
}

#[test]
fn kubeedge_sample() {
    let v = Visitor::compile(&spec(H, 0, 1, "float", 0.1), Float).unwrap();
    assert_eq!((v.data_type, v.count), (DataType::Int16, 1));
    check(&v, Float, &[0x00, 0xF5], Value::Float(24.5));
    check(&v, Float, &[0xFF, 0x0B], Value::Float(-24.5));
    let switch = compile(C, 0, 1, "int", Int);
    check(&switch, Int, &[0x01], Value::Int(1));
    check_write(&switch, Value::Int(1), 5, coils(0, &[true]));
}

#[test]
fn every_data_type() {
    let f = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE];
    let pi = std::f64::consts::PI.to_bits().to_be_bytes();
    let (int, text) = (Value::Int, Value::string);
    let cases: [(&str, i64, PropertyType, &[u8], Value); 17] = [
        ("int16", 1, Int, &f[6..], int(-2)),
        ("uint16", 0, Int, &f[6..], int(65534)),
        ("int", 1, Int, &f[6..], int(65534)),
        ("", 0, Int, &f[6..], int(65534)),
        ("int32", 2, Int, &f[4..], int(-2)),
        ("UInt32", 0, Int, &f[4..], int(4_294_967_294)),
        ("int64", 4, Int, &f, int(-2)),
        ("uint64", 4, Int, &f, int(i64::MAX)),
        ("uint64", 0, String, &f, text("18446744073709551614")),
        (
            "double",
            0,
            Double,
            &pi,
            Value::Double(std::f64::consts::PI),
        ),
        ("float64", 4, String, &pi, text("3.141592653589793")),
        ("", 0, Boolean, &[0, 2], Value::Boolean(true)),
        ("bool", 1, Int, &[0, 0], int(0)),
        ("string", 3, String, b"AB \0\0\0", text("AB")),
        ("string", 1, String, &[0xC3, 0x28], text("\u{FFFD}(")),
        ("", 2, Bytes, b"AB\0\0", Value::bytes(*b"AB\0\0")),
        ("string", 2, Bytes, b"AB  ", Value::bytes(*b"AB  ")),
    ];
    for (dt, limit, ty, frame, want) in cases {
        check(&compile(H, 7, limit, dt, ty), ty, frame, want);
    }
    let d = Visitor::compile(&spec("InputRegister", 7, 2, "double", 0.5), Double).unwrap();
    check(&d, Double, &[0xFF, 0xFF, 0xFF, 0xFD], Value::Double(-1.5));
}

#[test]
fn float32_under_all_swaps() {
    let frames: [(bool, bool, [u8; 4]); 4] = [
        (false, false, [0x3F, 0xC0, 0, 0]),
        (true, false, [0xC0, 0x3F, 0, 0]),
        (false, true, [0, 0, 0x3F, 0xC0]),
        (true, true, [0, 0, 0xC0, 0x3F]),
    ];
    for (is_swap, is_register_swap, frame) in frames {
        let s = VisitorSpec {
            is_swap,
            is_register_swap,
            ..spec(H, 0, 2, "float32", 0.0)
        };
        let v = Visitor::compile(&s, Float).unwrap();
        check(&v, Float, &frame, Value::Float(1.5));
        let words: Vec<u16> = frame
            .chunks(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect();
        check_write(&v, Value::Float(1.5), 16, regs(0, &words));
    }
}

#[test]
fn scale_rounds_to_its_decimals() {
    let v = scaled("uint16", 0.1, Double);
    check(&v, Double, &[0, 123], Value::Double(12.3));
    check(&v, String, &[0, 123], Value::string("12.3"));
    check(&v, Int, &[0, 245], Value::Int(24));
    check_write(&v, Value::Double(12.3), 6, regs(0, &[123]));
    check(
        &scaled("int16", 0.01, Double),
        Double,
        &[0xFF, 0xF9],
        Value::Double(-0.07),
    );
    check(&scaled("uint16", 10.0, Int), Int, &[0, 7], Value::Int(70));
    check(
        &scaled("float32", 0.1, Float),
        Float,
        &[0x41, 0x20, 0, 0],
        Value::Float(1.0),
    );
    assert_eq!(scaled("int16", 1.0, Int), scaled("int16", 0.0, Int));
    let mut changed = scaled("uint16", 0.1, Double);
    changed.scale = 0.25;
    check(&changed, Double, &[0, 3], Value::Double(0.75));
}

#[test]
fn bits_at_a_frame_offset() {
    // The frame starts at coil 3: bit i of the frame is address 3 + i.
    let frame = [0b1010_0100, 0b0000_0011];
    let at = |v: Visitor, ty| v.decode(ty, 3, &frame).unwrap();
    assert_eq!(
        at(compile(C, 3, 0, "", Boolean), Boolean),
        Value::Boolean(false)
    );
    assert_eq!(
        at(compile(C, 5, 0, "", Boolean), Boolean),
        Value::Boolean(true)
    );
    let int = |offset, limit| {
        at(
            compile("DiscreteInputRegister", offset, limit, "int", Int),
            Int,
        )
    };
    assert_eq!(int(8, 4), Value::Int(0b1101));
    assert_eq!(int(3, 10), Value::Int(0b11_1010_0100));
    let c = compile(C, 4, 3, "int", Int);
    check_write(&c, Value::Int(0b110), 15, coils(4, &[false, true, true]));
    assert_eq!(expected(c.encode(&Value::Int(8)).unwrap_err()), "uint16");
}

#[test]
fn short_frames() {
    let v = compile(H, 10, 2, "uint32", Int);
    let b = compile(C, 10, 4, "int", Int);
    let cases = [
        (v, 9, 5, (6, 5)),
        (v, 11, 8, (4, 0)),
        (b, 5, 1, (2, 1)),
        (b, 11, 1, (1, 0)),
    ];
    for (visitor, start, len, want) in cases {
        let err = visitor.decode(Int, start, &vec![0; len]).unwrap_err();
        assert_eq!(short(err), want);
    }
    assert_eq!(v.decode(Int, 9, &[0; 6]).unwrap(), Value::Int(0));
    assert_eq!(b.decode(Int, 6, &[0]).unwrap(), Value::Int(0));
    let e = v.decode(Int, 9, &[]).unwrap_err();
    let e = e.with_device("d").with_property("p");
    assert_eq!((e.device(), e.property()), (Some("d"), Some("p")));
}

#[test]
fn bad_configs_name_their_field() {
    let cases: [(&str, i64, i64, &str, f64, PropertyType, &str); 21] = [
        ("Holding", 0, 0, "", 0.0, Int, "register"),
        (H, -1, 0, "", 0.0, Int, "offset"),
        (H, 65_535, 2, "int32", 0.0, Int, "offset"),
        (H, 0, 1, "int32", 0.0, Int, "limit"),
        (H, 0, 3, "int", 0.0, Int, "limit"),
        (H, 0, 4, "float", 0.0, Float, "limit"),
        (H, 0, 0, "string", 0.0, String, "limit"),
        (H, 0, 126, "string", 0.0, String, "limit"),
        (H, 0, -1, "bytes", 0.0, Bytes, "limit"),
        (C, 0, 65, "int", 0.0, Int, "limit"),
        (C, 0, 2, "bool", 0.0, Boolean, "limit"),
        (C, 0, 17, "int16", 0.0, Int, "limit"),
        (C, 0, 1, "float", 0.0, Float, "dataType"),
        (C, 0, 1, "", 0.0, Bytes, "dataType"),
        (H, 0, 0, "long", 0.0, Int, "dataType"),
        (H, 0, 2, "string", 0.0, Int, "dataType"),
        (H, 0, 1, "int16", 0.0, Bytes, "dataType"),
        (H, 0, 1, "bytes", 0.0, String, "dataType"),
        (H, 0, 2, "string", 0.1, String, "scale"),
        (H, 0, 1, "boolean", 2.0, Boolean, "scale"),
        (H, 0, 1, "", f64::NAN, Int, "scale"),
    ];
    for (register, offset, limit, dt, scale, ty, key) in cases {
        let e = Visitor::compile(&spec(register, offset, limit, dt, scale), ty).unwrap_err();
        let want = format!("visitors.configData.{key}");
        assert_eq!(e.path(), Some(want.as_str()), "{e}");
    }
    assert!(Visitor::compile(&spec(H, 65_535, 1, "", 0.0), Int).is_ok());
    let mut swap = spec(C, 0, 1, "", 0.0);
    swap.is_swap = true;
    let e = Visitor::compile(&swap, Boolean).unwrap_err();
    assert_eq!(e.path(), Some("visitors.configData.isSwap"));
    (swap.is_swap, swap.is_register_swap) = (false, true);
    let e = Visitor::compile(&swap, Boolean).unwrap_err();
    assert_eq!(e.path(), Some("visitors.configData.isRegisterSwap"));
    let e = Visitor::compile(&spec(H, 0, 0, "long", 0.0), Int).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("uint64") && msg.contains("float"), "{msg}");
}

#[test]
fn write_errors() {
    let input = compile("InputRegister", 0, 1, "", Int);
    let err = input.encode(&Value::Int(1)).unwrap_err();
    assert_eq!(err.path(), Some("visitors.configData.register"));
    let text = Value::string;
    let cases = [
        ("uint16", 1, Int, text("1"), "INT"),
        ("uint16", 1, Int, Value::Int(65_536), "uint16"),
        ("uint16", 1, Int, Value::Int(-1), "uint16"),
        ("float32", 2, Double, Value::Double(1e300), "float32"),
        (
            "string",
            1,
            String,
            text("abc"),
            "STRING of at most 2 bytes",
        ),
        ("int16", 1, String, text("x"), "DOUBLE"),
    ];
    for (dt, limit, ty, value, want) in cases {
        let err = compile(H, 0, limit, dt, ty).encode(&value).unwrap_err();
        assert_eq!(expected(err), want);
    }
    let text = compile(H, 3, 1, "string", String).encode(&Value::string("a"));
    assert_eq!(text.unwrap(), regs(3, &[0x6100]));
    let number = compile(H, 0, 1, "int16", String).encode(&Value::string(" -3"));
    assert_eq!(number.unwrap(), regs(0, &[0xFFFD]));
}

#[test]
fn out_of_range_writes_say_the_range_in_the_value_units() {
    let message = |v: Visitor, value: Value| match v.encode(&value).unwrap_err() {
        Error::OutOfRange { message, .. } => message,
        other => panic!("{other}"),
    };
    let cases = [
        (compile(H, 0, 1, "int16", Int), Value::Int(99_999), "99999 is outside what an int16 register holds: -32768..32767"),
        (compile(H, 0, 1, "uint16", Int), Value::Int(-1), "-1 is outside what a uint16 register holds: 0..65535"),
        (compile(H, 0, 2, "int32", Int), Value::Int(1 << 40), "1099511627776 is outside what an int32 over 2 registers holds: -2147483648..2147483647"),
        (compile(H, 0, 2, "uint32", Int), Value::Int(-5), "-5 is outside what a uint32 over 2 registers holds: 0..4294967295"),
        (scaled("int16", 0.1, Double), Value::Double(3276.8), "3276.8 is outside what an int16 register at scale 0.1 holds: -3276.8..3276.7"),
        (scaled("int16", -0.5, Double), Value::Double(-20_000.0), "-20000 is outside what an int16 register at scale -0.5 holds: -16383.5..16384"),
        (scaled("int16", 0.1, Double), Value::Double(f64::NAN), "NaN is outside what an int16 register at scale 0.1 holds: -3276.8..3276.7"),
        (compile(H, 0, 2, "float32", Double), Value::Double(1e300), "1e300 is outside what a float32 over 2 registers holds: -3.4028235e38..3.4028235e38"),
        (compile(C, 0, 1, "int", Int), Value::Int(2), "2 is outside what a coil holds: 0..1"),
        (compile(C, 4, 3, "int", Int), Value::Int(8), "8 is outside what 3 coils hold: 0..7"),
    ];
    for (v, value, want) in cases {
        assert_eq!(message(v, value), want);
    }
    let named = compile(H, 0, 1, "int16", Int)
        .encode(&Value::Int(40_000))
        .unwrap_err();
    let named = named.with_device("ns/valve").with_property("position");
    assert_eq!(named.device(), Some("ns/valve"));
    assert!(named
        .to_string()
        .starts_with("device ns/valve, property position: 40000 is outside"));
}

#[test]
fn plan_merges_within_limits() {
    let vs = [
        compile(H, 10, 2, "", Int),
        compile(C, 3, 1, "", Int),
        compile(H, 0, 1, "", Int),
        compile(H, 14, 4, "", Int),
        compile(H, 200, 1, "", Int),
        compile(C, 0, 1, "", Int),
    ];
    let plan = plan_reads(&vs, 0, 0, 9);
    let summary = |r: &ReadRange| (r.kind, r.start, r.count, r.members.clone());
    let got: Vec<_> = plan.iter().map(summary).collect();
    let want = [
        (RegisterKind::Coil, 0, 4, vec![5, 1]),
        (RegisterKind::Holding, 0, 18, vec![2, 0, 3]),
        (RegisterKind::Holding, 200, 1, vec![4]),
    ];
    assert_eq!(got, want);
    assert_eq!((plan[0].frame_len(), plan[1].frame_len()), (1, 36));
    assert_eq!(plan_reads(&vs, 0, 0, 8).len(), 4);
    assert_eq!(plan_reads(&vs, 12, 0, 9).len(), 4);
    assert_eq!(plan_reads(&vs, 0, 0, 0).len(), 6);
    assert!(plan_reads(&[], 0, 0, 0).is_empty());
}

/// A manifest visitor (on `HoldingRegister` 10 or `CoilRegister` 10), its property type and
/// a value that round-trips through it.
type Case = (VisitorSpec, PropertyType, Value);

fn hr(dt: &str, limit: i64, scale: f64, ty: PropertyType, v: Value) -> Case {
    (spec(H, 10, limit, dt, scale), ty, v)
}

fn coil(dt: &str, limit: i64, ty: PropertyType, v: Value) -> Case {
    (spec(C, 10, limit, dt, 0.0), ty, v)
}

fn f32s() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("NaN", |x| !x.is_nan())
}

fn register_cases() -> impl Strategy<Value = Case> {
    let (int, text) = (Value::Int, Value::string);
    let (fl, db, bytes) = (Value::Float, Value::Double, |x: Vec<u8>| Value::bytes(x));
    let f64s = any::<f64>().prop_filter("NaN", |x| !x.is_nan());
    prop_oneof![
        any::<i16>().prop_map(move |x| hr("int16", 1, 0.0, Int, int(x.into()))),
        any::<u16>().prop_map(move |x| hr("int", 0, 1.0, Int, int(x.into()))),
        any::<i32>().prop_map(move |x| hr("int32", 2, 0.0, Int, int(x.into()))),
        any::<u32>().prop_map(move |x| hr("uint32", 0, 0.0, Int, int(x.into()))),
        any::<i64>().prop_map(move |x| hr("int64", 4, 0.0, Int, int(x))),
        (0..=i64::MAX).prop_map(move |x| hr("int", 4, 0.0, Int, int(x))),
        any::<i32>().prop_map(move |x| hr("int32", 0, 0.0, String, text(x.to_string()))),
        any::<u64>().prop_map(move |x| hr("uint64", 0, 0.0, String, text(x.to_string()))),
        (-(1i64 << 24)..(1 << 24)).prop_map(move |x| hr("float32", 2, 0.0, Int, int(x))),
        f32s().prop_map(move |x| hr("float", 2, 0.0, Float, fl(x))),
        f32s().prop_map(move |x| hr("float32", 0, 0.0, Double, db(x.into()))),
        f32s().prop_map(move |x| hr("float32", 0, 0.0, String, text(fl(x).to_canonical()))),
        f64s.prop_map(move |x| hr("double", 4, 0.0, Double, db(x))),
        any::<bool>().prop_map(|x| hr("boolean", 1, 0.0, Boolean, Value::Boolean(x))),
        any::<bool>().prop_map(move |x| hr("bool", 0, 0.0, String, text(x.to_string()))),
        "\\PC{0,3}[a-z]".prop_map(move |x| hr("string", 8, 0.0, String, text(x))),
        vec(any::<u8>(), 6).prop_map(move |x| hr("bytes", 3, 0.0, Bytes, bytes(x))),
    ]
}

/// Scaled integers: values that are multiples of the scale.
fn scaled_cases() -> impl Strategy<Value = Case> {
    let tenth = |k: i64| Value::Double(k as f64 / 10.0);
    let cent = |k: i64| Value::Double(k as f64 / 100.0);
    let tenth32 = |k: u16| Value::Float((f64::from(k) / 10.0) as f32);
    let text = |v: Value| Value::string(v.to_canonical());
    prop_oneof![
        any::<i16>().prop_map(move |k| hr("float", 1, 0.1, Double, tenth(k.into()))),
        any::<u16>().prop_map(move |k| hr("uint16", 1, 0.1, Float, tenth32(k))),
        (-214_748_364..=214_748_364i64).prop_map(|v| hr("int32", 2, 0.1, Int, Value::Int(v))),
        (-(1i64 << 45)..(1 << 45)).prop_map(move |k| hr("int64", 4, 0.01, Double, cent(k))),
        (0..(1i64 << 45)).prop_map(move |k| hr("uint64", 4, 0.01, String, text(cent(k)))),
    ]
}

fn bit_cases() -> impl Strategy<Value = Case> {
    let int = (1i64..=64).prop_flat_map(|n| {
        let max = if n >= 63 { i64::MAX } else { (1i64 << n) - 1 };
        (0..=max).prop_map(move |x| coil("int", n, Int, Value::Int(x)))
    });
    prop_oneof![
        int,
        any::<bool>().prop_map(|x| coil("", 1, Boolean, Value::Boolean(x))),
        any::<i16>().prop_map(|x| coil("int16", 16, Int, Value::Int(x.into()))),
    ]
}

/// The frame a read starting `pad` registers/bits before the write would return.
fn frame_of(op: &WriteOp, pad: u16) -> (u16, Vec<u8>) {
    match op {
        WriteOp::Registers { offset, words } => {
            let mut frame = vec![0xAA; 2 * usize::from(pad)];
            frame.extend(words.iter().flat_map(|w| w.to_be_bytes()));
            (offset - pad, frame)
        }
        WriteOp::Coils { offset, bits } => {
            let noise = (0..pad).map(|i| i % 2 == 0);
            let all: Vec<bool> = noise.chain(bits.iter().copied()).collect();
            let pack = |c: &[bool]| c.iter().rev().fold(0u8, |b, &x| (b << 1) | u8::from(x));
            (offset - pad, all.chunks(8).map(pack).collect())
        }
    }
}

fn arb_visitor() -> impl Strategy<Value = Visitor> {
    (0..4usize, 0u16..300, 1u16..=64).prop_map(|(k, offset, n)| {
        let kind = RegisterKind::ALL[k];
        let count = if kind.is_bit() { n } else { n.div_ceil(6) };
        let mut v = compile(H, 0, 1, "", Int);
        (v.kind, v.offset, v.count) = (kind, offset, count);
        v
    })
}

fn overlap(a: (u16, u32), b: (u16, u32)) -> bool {
    u32::from(a.0) < b.1 && u32::from(b.0) < a.1
}

proptest! {
    #[test]
    fn decode_inverts_encode(
        (s, ty, value) in prop_oneof![register_cases(), scaled_cases(), bit_cases()],
        is_swap in any::<bool>(),
        is_register_swap in any::<bool>(),
        pad in 0u16..=10,
    ) {
        let bits = s.register == C;
        let (is_swap, is_register_swap) = (is_swap && !bits, is_register_swap && !bits);
        let v = Visitor::compile(&VisitorSpec { is_swap, is_register_swap, ..s }, ty).unwrap();
        let (start, frame) = frame_of(&v.encode(&value).unwrap(), pad);
        prop_assert_eq!(v.decode(ty, start, &frame).unwrap(), value);
    }

    #[test]
    fn plan_invariants(
        vs in vec(arb_visitor(), 0..40),
        max_registers in 0u16..130,
        max_bits in 0u16..2100,
        max_gap in 0u16..20,
    ) {
        let plan = plan_reads(&vs, max_registers, max_bits, max_gap);
        let mut seen = vec![0; vs.len()];
        for r in &plan {
            let limit = read_limit(r.kind, max_registers, max_bits);
            let alone = r.members.len() == 1 && vs[r.members[0] as usize].count == r.count;
            prop_assert!(r.count <= limit || alone, "{:?} exceeds {}", r, limit);
            for &m in &r.members {
                seen[m as usize] += 1;
                prop_assert!(vs[m as usize].covered_by(r.kind, r.start, r.count));
            }
        }
        prop_assert!(seen.iter().all(|&n| n == 1));
        let keys: Vec<_> = plan.iter().map(|r| (r.kind, r.start)).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        let span = |i: u32| (vs[i as usize].offset, vs[i as usize].end());
        for (i, a) in plan.iter().enumerate() {
            for b in plan[i + 1..].iter().filter(|b| b.kind == a.kind) {
                if overlap((a.start, a.end()), (b.start, b.end())) {
                    let forced = a.members.iter()
                        .any(|&x| b.members.iter().any(|&y| overlap(span(x), span(y))));
                    prop_assert!(forced, "{:?} overlaps {:?}", a, b);
                }
            }
        }
    }
}
