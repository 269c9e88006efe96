//! [`Spread`]: a figure over the runs of a benchmark (the median, the least, the most).

use std::time::Duration;

use mmkit::helpers::median;

/// A figure over the runs of a benchmark: the median, the least and the most.
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
    pub(crate) fn of_ms(times: &[Duration]) -> Spread {
        let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
        Spread::of(&mut ms)
    }
}
