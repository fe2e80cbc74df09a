//! Latency statistics of one metric. Percentiles, mean and standard deviation come from an
//! HdrHistogram (3 significant digits, so a p99 is exact to 0.1% however wide the spread);
//! the raw samples are kept beside them so nothing is lost to binning.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency summary of one metric, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub stddev_us: f64,
    /// Every sample, in the order taken (warm-up excluded).
    pub samples_us: Vec<u64>,
}

/// Longest latency the histogram tracks: an hour. Longer samples are clamped (an RPC that
/// slow has long since failed its deadline).
const HIGHEST_US: u64 = 3_600_000_000;

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        let us: Vec<u64> = samples
            .iter()
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .collect();
        Self::of_micros(us)
    }

    pub fn of_micros(us: Vec<u64>) -> Self {
        // Bounds and precision are constants within hdrhistogram's limits, so creation
        // cannot fail; fall back to an empty summary rather than panic if it ever did.
        let Ok(mut h) = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3) else {
            return Self::empty(us);
        };
        for &v in &us {
            h.saturating_record(v.clamp(1, HIGHEST_US));
        }
        if us.is_empty() {
            return Self::empty(us);
        }
        // The histogram answers with the top of a percentile's bucket (within 0.1%); the
        // extremes are exact from the samples, and no percentile is reported beyond them.
        let (min, max) = us
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let q = |p: f64| h.value_at_quantile(p).clamp(min, max);
        // Mean and (population) standard deviation exactly, from the samples themselves.
        let n = us.len() as f64;
        let mean = us.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = us.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        Self {
            n: us.len(),
            min_us: min,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: max,
            mean_us: round2(mean),
            stddev_us: round2(var.sqrt()),
            samples_us: us,
        }
    }

    /// min, p50, p90, p99, max and "mean ± stddev", formatted for tables.
    pub fn columns(&self) -> [String; 6] {
        [
            human(self.min_us),
            human(self.p50_us),
            human(self.p90_us),
            human(self.p99_us),
            human(self.max_us),
            format!("{} ± {}", human_f(self.mean_us), human_f(self.stddev_us)),
        ]
    }

    fn empty(us: Vec<u64>) -> Self {
        Self {
            n: us.len(),
            min_us: 0,
            p50_us: 0,
            p90_us: 0,
            p99_us: 0,
            max_us: 0,
            mean_us: 0.0,
            stddev_us: 0.0,
            samples_us: us,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A latency in the unit that reads best: µs below a millisecond, ms below ten seconds.
pub fn human(us: u64) -> String {
    human_f(us as f64)
}

pub fn human_f(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us < 10_000_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_mean_and_stddev() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&d);
        assert_eq!(
            (s.min_us, s.p50_us, s.p90_us, s.p99_us, s.max_us, s.n),
            (1, 50, 90, 99, 100, 100)
        );
        assert_eq!(s.mean_us, 50.5);
        // Population standard deviation of 1..=100.
        assert!((s.stddev_us - 28.87).abs() < 0.01, "{}", s.stddev_us);
        assert_eq!(s.samples_us.len(), 100);
        let one = Summary::of(&[Duration::from_micros(7)]);
        assert_eq!((one.p50_us, one.p99_us, one.stddev_us), (7, 7, 0.0));
        assert_eq!(Summary::of(&[]).p50_us, 0);
    }

    #[test]
    fn wide_spreads_keep_three_digits() {
        let mut d: Vec<Duration> = vec![Duration::from_micros(150); 98];
        d.push(Duration::from_millis(161_234));
        d.push(Duration::from_secs(7200));
        let s = Summary::of(&d);
        assert_eq!(s.p50_us, 150);
        assert!(
            (s.p99_us as f64 - 161_234_000.0).abs() / 161_234_000.0 < 0.001,
            "{}",
            s.p99_us
        );
        assert_eq!(
            s.max_us, 7_200_000_000,
            "the raw maximum, beyond the histogram"
        );
        let s = Summary::of(&[Duration::from_micros(150_000)]);
        assert_eq!((s.min_us, s.p50_us, s.max_us), (150_000, 150_000, 150_000));
    }

    #[test]
    fn human_units() {
        assert_eq!(human(250), "250 µs");
        assert_eq!(human(11_240), "11.2 ms");
        assert_eq!(human(1_500), "1.50 ms");
        assert_eq!(human(161_000), "161.0 ms");
        assert_eq!(human(12_000_000), "12.00 s");
    }
}
