//! regs (being written; see issue 3).
