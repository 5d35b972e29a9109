//! The `LatencyHistogram` pyclass: a frozen snapshot of one of the engine's latency histograms.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use twin_core::latency::{LatencyHistogram as Core, BOUNDS_MS};

/// A latency histogram at one moment (see `twinplane.twin.LatencyHistogram`).
#[pyclass(frozen, module = "twinplane._engine")]
pub struct LatencyHistogram {
    inner: Core,
}

impl LatencyHistogram {
    pub(crate) fn new(inner: Core) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl LatencyHistogram {
    /// Finite bucket upper bounds in ms (a last `+Inf` bucket follows).
    #[getter]
    #[allow(clippy::unused_self)] // the bounds are fixed, but Python reads them per histogram
    fn bounds_ms(&self) -> Vec<f64> {
        BOUNDS_MS.iter().map(|&b| b as f64).collect()
    }

    /// Non-cumulative counts per bucket, `len(bounds_ms) + 1` of them; the last is `+Inf`.
    #[getter]
    fn counts(&self) -> Vec<u64> {
        self.inner.counts().to_vec()
    }

    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    #[getter]
    fn sum_ms(&self) -> f64 {
        self.inner.sum_ms() as f64
    }

    #[getter]
    fn max_ms(&self) -> f64 {
        self.inner.max_ms() as f64
    }

    /// The interpolated `q`-quantile in ms (`None` when empty).
    fn quantile(&self, q: f64) -> PyResult<Option<f64>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(PyValueError::new_err(format!(
                "quantile q must be in [0, 1], got q={q}"
            )));
        }
        Ok(self.inner.quantile(q))
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.inner.count()).unwrap_or(usize::MAX)
    }

    fn __repr__(&self) -> String {
        format!(
            "<LatencyHistogram count={} sum_ms={} max_ms={}>",
            self.inner.count(),
            self.inner.sum_ms(),
            self.inner.max_ms()
        )
    }
}
