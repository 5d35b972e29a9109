//! `twinplane._engine`: the thin pyo3 layer over `twin-core`.
//!
//! Python code never imports this module directly; `twinplane.twin` is the typed facade.
//! Conventions: configuration crosses once as plain mappings (the manifest's own keys);
//! hot calls take indices and bytes; batch calls release the GIL through [`without_gil`];
//! the engine lives behind a lock that is never held while the GIL is being acquired.

mod changes;
mod convert;
mod engine;
mod errors;
mod latency;
mod modbus_io;

use pyo3::prelude::*;

/// Runs `f` with the GIL released (so `asyncio.to_thread` callers keep the event loop free).
pub(crate) fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(f)
}

/// The native module.
#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_class::<changes::Changes>()?;
    m.add_class::<changes::EncodedReport>()?;
    m.add_class::<latency::LatencyHistogram>()?;
    m.add_class::<modbus_io::ModbusIo>()?;
    m.add_function(wrap_pyfunction!(convert::canonical, m)?)?;
    m.add_function(wrap_pyfunction!(convert::is_kubeedge_safe, m)?)?;
    m.add_function(wrap_pyfunction!(convert::decode_register, m)?)?;
    m.add_function(wrap_pyfunction!(convert::encode_register, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
