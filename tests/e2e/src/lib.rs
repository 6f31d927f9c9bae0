//! Helpers for the end-to-end tests: driving the real `docker` CLI against a chosen runtime.
