//! Pure load-balancing policy for orca-lb (documentation being written).
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod ewma;
pub mod named_metrics;
mod peak_ewma;
mod report;

pub use ewma::Ewma;
pub use peak_ewma::PeakEwma;
pub use report::{Field, InvalidReport, LoadReport, RawLoadReport, Violation};
