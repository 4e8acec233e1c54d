//! evtq (being written; see issue 3).
