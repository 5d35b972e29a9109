//! The one conversion table from `twin_core::Error` to the `twinplane.errors` exception tree.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use twin_core::Error;

/// Converts an engine error into the matching `twinplane.errors` exception, with its fields.
pub(crate) fn to_py(err: &Error) -> PyErr {
    Python::attach(|py| build(py, err).unwrap_or_else(|e| e))
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("device", err.device())?;
    kwargs.set_item("property", err.property())?;
    kwargs.set_item("path", err.path())?;
    let class = match err {
        Error::InvalidSpec { .. } => "SpecError",
        Error::UnknownDevice { .. } => "UnknownDeviceError",
        Error::UnknownProperty { .. } => "UnknownPropertyError",
        Error::ShortFrame { needed, got, .. } => {
            kwargs.set_item("needed", needed)?;
            kwargs.set_item("got", got)?;
            "FrameError"
        }
        Error::TypeMismatch { expected, .. } => {
            kwargs.set_item("expected", expected)?;
            "ValueTypeError"
        }
        Error::OutOfRange { data_type, .. } => {
            kwargs.set_item("expected", data_type)?;
            "ValueTypeError"
        }
        Error::VersionConflict { .. } => "VersionConflictError",
    };
    let module = py.import("twinplane.errors")?;
    let exc = module
        .getattr(class)?
        .call((err.to_string(),), Some(&kwargs))?;
    Ok(PyErr::from_value(exc))
}

/// Extension trait: `result.py()?` turns an engine error into the Python exception.
pub(crate) trait IntoPy<T> {
    /// Maps the error side to a Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| to_py(&e))
    }
}

/// An error for an engine lock poisoned by a panic (a bug; reported, not hidden).
pub(crate) fn poisoned() -> PyErr {
    PyRuntimeError::new_err("twin engine lock poisoned by an earlier panic")
}
