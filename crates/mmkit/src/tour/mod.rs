//! The tour.
