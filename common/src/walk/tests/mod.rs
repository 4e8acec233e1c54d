//! Walker tests beyond the per-module unit tests: Linux io-pgtable reference vectors,
//! randomized robustness, nesting and HTTU.

mod iopgtable;
mod random;
