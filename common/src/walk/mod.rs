//! VMSAv8-64 page-table walker (being written; see issue 2).
