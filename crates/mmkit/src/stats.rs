//! The one median: of the crate's tests and benches, and of the lab's benchmarks and tour
//! (through [`crate::helpers`]).

use std::time::Duration;

/// The median of `values` (the mean of the two middle ones for an even count), or 0
/// for none. Sorts `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median of `times`, as [`median`] takes it, to the nanosecond. Sorts `times`, so
/// the first and last are the minimum and maximum afterwards.
pub fn median_time(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    match times.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => times[n / 2],
        n => (times[n / 2 - 1] + times[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let ms = Duration::from_millis;
        let mut t = [ms(5), ms(1), ms(4), ms(3)];
        assert_eq!(median_time(&mut t), Duration::from_micros(3500));
        assert_eq!(t, [ms(1), ms(3), ms(4), ms(5)]);
    }
}
