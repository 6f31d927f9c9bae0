//! Profiles: what one image has learned (counts, n, metadata, mode, calibrated threshold).
