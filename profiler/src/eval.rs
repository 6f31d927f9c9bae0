//! Offline evaluation: train, calibrate on held-out normal traces, report AUC, detection and
//! false-alarm rates, consecutive false alarms and detection latency.
