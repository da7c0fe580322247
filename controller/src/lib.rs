//! pmfleet controller library.
