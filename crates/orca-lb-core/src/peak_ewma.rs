//! placeholder
#![allow(missing_docs)]
#[derive(Debug, Clone)]
pub struct PeakEwma;
