//! TODO: names
