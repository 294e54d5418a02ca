//! TODO: testing
