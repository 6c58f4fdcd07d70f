//! exposition (in progress).
