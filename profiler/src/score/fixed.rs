//! Fixed-point units of -ln P: window sums stay exact integers and do not drift, and the hot
//! loop does no floating point but one division.

/// Fixed-point units per nat of -ln P (and per unit of a 0/1 indicator).
pub const SCALE: u32 = 1 << 20;

/// -ln P (nats, >= 0) in [`SCALE`] units, clamped into `u32`.
pub(super) fn to_fixed(nll: f64) -> u32 {
    let v = (nll * f64::from(SCALE)).round();
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range by the checks above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let u = v as u32;
        u
    }
}

/// A value of either sign (a -ln alpha) in [`SCALE`] units, clamped into `i32`.
pub(super) fn to_fixed_signed(nll: f64) -> i32 {
    let v = (nll * f64::from(SCALE)).round();
    if v.is_nan() {
        0
    } else {
        // Clamped into i32's range first.
        #[allow(clippy::cast_possible_truncation)]
        let i = v.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
        i
    }
}

/// [`SCALE`] units back to nats.
pub(super) fn from_fixed(v: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let x = v as f64;
    x / f64::from(SCALE)
}

/// The probability whose -ln is `v` [`SCALE`] units.
pub(super) fn prob_of(v: u32) -> f64 {
    (-from_fixed(u64::from(v))).exp()
}
