//! Scoring: sliding windows over each thread's n-grams, anomaly scores per window and per trace,
//! threshold calibration on held-out normal traces, and explainable alarms.
