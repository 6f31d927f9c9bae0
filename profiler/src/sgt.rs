//! Simple Good-Turing smoothing (Gale & Sampson 1995) over frequencies of frequencies.
