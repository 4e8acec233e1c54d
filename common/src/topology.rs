//! Requester-ID topology (being written; see issue 2).
