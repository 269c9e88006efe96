//! The one median of the benchmarks and the tour, and [`Spread`]: a figure over runs.

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

/// A figure over the runs of a benchmark: the median, the least and the most.
#[cfg(all(feature = "bench", any(feature = "store", feature = "remote")))]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Spread {
    /// The median (of an even count, the mean of the middle two).
    pub median: f64,
    /// The least.
    pub min: f64,
    /// The most.
    pub max: f64,
}

#[cfg(all(feature = "bench", any(feature = "store", feature = "remote")))]
impl Spread {
    /// The spread of `values` (sorted by the call).
    pub(crate) fn of(values: &mut [f64]) -> Spread {
        let median = median(values);
        Spread {
            median,
            min: values.first().copied().unwrap_or(0.0),
            max: values.last().copied().unwrap_or(0.0),
        }
    }

    /// The spread of `times`, in milliseconds.
    #[cfg(feature = "remote")]
    pub(crate) fn of_ms(times: &[Duration]) -> Spread {
        let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
        Spread::of(&mut ms)
    }
}
