//! config (being written; see issue 3).
