//! spec (being written; see issue 3).

pub mod regs;
