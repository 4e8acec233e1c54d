//! Walker tests beyond the per-module unit tests: Linux io-pgtable reference vectors,
//! randomized robustness, nesting and HTTU.

mod helpers;
mod httu;
mod iopgtable;
mod nested;
mod random;
mod stage1;
mod stage2;
