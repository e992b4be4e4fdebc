//! [`Usd`]: exact US dollar amounts in pico-dollars.

use std::fmt;

/// Pico-dollars in one dollar.
const PICOS_PER_USD: u128 = 1_000_000_000_000;
/// Fractional digits of a pico-dollar amount written in dollars.
const FRACTION_DIGITS: usize = 12;

/// An exact amount of US dollars, in pico-dollars (1e-12 USD). No floating point inside.
///
/// Amounts are built exactly from decimal strings ([`Usd::parse_decimal`]) or from
/// pico-dollars, and added with checked arithmetic. `f64` appears only at the boundary
/// ([`Usd::as_f64`] for span attributes, [`Usd::from_f64`] for provider-reported costs).
///
/// ```
/// use llmtel_pricing::Usd;
///
/// let a = Usd::parse_decimal("0.0375").unwrap();
/// assert_eq!(a.picos(), 37_500_000_000);
/// assert_eq!(a.to_string(), "$0.037500");
/// assert_eq!(Usd::parse_decimal("0.0000375").unwrap().to_string(), "$0.0000375");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u128);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(0);

    /// An amount of `p` pico-dollars (1e-12 USD).
    pub const fn from_picos(p: u128) -> Self {
        Usd(p)
    }

    /// This amount in pico-dollars (1e-12 USD).
    pub const fn picos(self) -> u128 {
        self.0
    }

    /// This amount in dollars as an `f64`, for span attributes and JSON.
    ///
    /// f64 only at the attribute boundary: the value can lose precision past 15–16
    /// significant digits. Never feed it back into cost arithmetic.
    pub fn as_f64(self) -> f64 {
        // Split so that amounts below 2^53 pico-dollars convert exactly before dividing.
        // Amounts under 2^64 pico-dollars (~18 million dollars: every call) take the same
        // steps in 64 bits: a 128-bit integer has no hardware conversion to f64, and the
        // export stage converts a dozen amounts a call. (Integer-to-float `as` rounds to
        // nearest in either width, so the result is the same.)
        if let Ok(v) = u64::try_from(self.0) {
            const P: u64 = PICOS_PER_USD as u64;
            return (v / P) as f64 + (v % P) as f64 / 1e12;
        }
        let dollars = (self.0 / PICOS_PER_USD) as f64;
        let frac = (self.0 % PICOS_PER_USD) as f64 / 1e12;
        dollars + frac
    }

    /// `self + o`, or `None` on overflow.
    pub fn checked_add(self, o: Usd) -> Option<Usd> {
        self.0.checked_add(o.0).map(Usd)
    }

    /// `self + o`, saturating at the largest representable amount.
    pub fn saturating_add(self, o: Usd) -> Usd {
        Usd(self.0.saturating_add(o.0))
    }

    /// Parses a decimal USD string like `"0.0375"` exactly (at most 12 fractional digits).
    ///
    /// Accepted: ASCII digits with an optional `.` and fraction (`"12"`, `"12.5"`, `".5"`,
    /// `"12."`), optionally prefixed by `$` and surrounded by whitespace. Rejected (`None`):
    /// signs, exponents, more than 12 fractional digits, empty input, amounts that do not
    /// fit in `u128` pico-dollars.
    pub fn parse_decimal(s: &str) -> Option<Usd> {
        let s = s.trim();
        let s = s.strip_prefix('$').unwrap_or(s);
        parse_fixed(s, FRACTION_DIGITS, Rounding::Exact).map(Usd)
    }

    /// From an f64 (e.g. a provider-reported cost), rounded to the nearest pico-dollar.
    ///
    /// The value is read through its shortest round-tripping decimal form (Rust's `{}`),
    /// so `0.1` becomes exactly 100,000,000,000 pico-dollars. Halves round up.
    /// `None` for negative, NaN, infinite or too-large values.
    pub fn from_f64(v: f64) -> Option<Usd> {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        // `{}` never uses an exponent for f64, and `-0.0` prints as "-0".
        let text = format!("{}", v.abs());
        parse_fixed(&text, FRACTION_DIGITS, Rounding::HalfUp).map(Usd)
    }
}

impl fmt::Display for Usd {
    /// `$0.012345` style: dollars with at least 6 decimals, trailing zeros beyond 6 trimmed.
    ///
    /// Honours width and alignment (`{:>14}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dollars = self.0 / PICOS_PER_USD;
        let frac = format!("{:012}", self.0 % PICOS_PER_USD);
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 6 {
            &frac[..6]
        } else {
            trimmed
        };
        f.pad(&format!("${dollars}.{shown}"))
    }
}

impl serde::Serialize for Usd {
    /// Serializes as a JSON number of dollars (`f64`), the form span attributes and
    /// dashboards expect. Use [`Usd::picos`] where exactness matters.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

/// What to do with digits beyond the allowed fraction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// Reject the input.
    Exact,
    /// Round to nearest, halves away from zero.
    HalfUp,
    /// Round to nearest, halves to the even neighbour (banker's rounding).
    HalfEven,
}

/// Parses an unsigned decimal `int[.frac]` into an integer scaled by `10^scale`.
///
/// Only ASCII digits and one `.`; at least one digit. With [`Rounding::Exact`], more than
/// `scale` fractional digits is an error (trailing zeros beyond `scale` are accepted).
pub(crate) fn parse_fixed(s: &str, scale: usize, rounding: Rounding) -> Option<u128> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: u128 = 0;
    for b in int.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    let (kept, extra) = if frac.len() > scale {
        frac.split_at(scale)
    } else {
        (frac, "")
    };
    for b in kept.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    for _ in kept.len()..scale {
        value = value.checked_mul(10)?;
    }
    if extra.bytes().any(|b| b != b'0') {
        match rounding {
            Rounding::Exact => return None,
            Rounding::HalfUp => {
                if extra.as_bytes()[0] >= b'5' {
                    value = value.checked_add(1)?;
                }
            }
            Rounding::HalfEven => {
                let first = extra.as_bytes()[0];
                let beyond_half = extra.bytes().skip(1).any(|b| b != b'0');
                let up = first > b'5' || (first == b'5' && (beyond_half || value % 2 == 1));
                if up {
                    value = value.checked_add(1)?;
                }
            }
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fixed_scales_and_rejects() {
        assert_eq!(parse_fixed("2.5", 6, Rounding::Exact), Some(2_500_000));
        assert_eq!(parse_fixed(".5", 2, Rounding::Exact), Some(50));
        assert_eq!(parse_fixed("5.", 2, Rounding::Exact), Some(500));
        assert_eq!(parse_fixed("0.1234567", 6, Rounding::Exact), None);
        assert_eq!(parse_fixed("0.1234560", 6, Rounding::Exact), Some(123_456));
        assert_eq!(parse_fixed("0.1234565", 6, Rounding::HalfUp), Some(123_457));
        assert_eq!(
            parse_fixed("0.1234565", 6, Rounding::HalfEven),
            Some(123_456)
        );
        assert_eq!(
            parse_fixed("0.1234575", 6, Rounding::HalfEven),
            Some(123_458)
        );
        assert_eq!(
            parse_fixed("0.12345650001", 6, Rounding::HalfEven),
            Some(123_457)
        );
        assert_eq!(
            parse_fixed("0.1234564999", 6, Rounding::HalfEven),
            Some(123_456)
        );
        assert_eq!(parse_fixed("", 6, Rounding::Exact), None);
        assert_eq!(parse_fixed(".", 6, Rounding::Exact), None);
        assert_eq!(parse_fixed("-1", 6, Rounding::Exact), None);
        assert_eq!(parse_fixed("1e5", 6, Rounding::Exact), None);
        assert_eq!(parse_fixed("1.2.3", 6, Rounding::Exact), None);
    }

    #[test]
    fn display_keeps_six_decimals_and_trims_beyond() {
        assert_eq!(
            Usd::from_picos(12_500_000_000_000).to_string(),
            "$12.500000"
        );
        assert_eq!(Usd::from_picos(37_500_000).to_string(), "$0.0000375");
        assert_eq!(Usd::ZERO.to_string(), "$0.000000");
        assert_eq!(Usd::from_picos(1).to_string(), "$0.000000000001");
        assert_eq!(format!("{:>12}", Usd::from_picos(0)), "   $0.000000");
    }

    #[test]
    fn from_f64_rounds_to_nearest_pico() {
        assert_eq!(Usd::from_f64(0.1), Some(Usd::from_picos(100_000_000_000)));
        assert_eq!(
            Usd::from_f64(12.5),
            Some(Usd::from_picos(12_500_000_000_000))
        );
        assert_eq!(Usd::from_f64(1.5e-12), Some(Usd::from_picos(2)));
        assert_eq!(Usd::from_f64(1.4e-12), Some(Usd::from_picos(1)));
        assert_eq!(Usd::from_f64(-0.0), Some(Usd::ZERO));
        assert_eq!(Usd::from_f64(-1.0), None);
        assert_eq!(Usd::from_f64(f64::NAN), None);
        assert_eq!(Usd::from_f64(f64::INFINITY), None);
        assert_eq!(Usd::from_f64(1e300), None);
    }

    #[test]
    fn as_f64_is_dollars() {
        assert_eq!(Usd::from_picos(12_500_000_000_000).as_f64(), 12.5);
        assert_eq!(Usd::from_picos(0).as_f64(), 0.0);
    }

    /// The 128-bit conversion `as_f64` takes above 2^64 pico-dollars.
    fn as_f64_in_128_bits(v: u128) -> f64 {
        (v / PICOS_PER_USD) as f64 + (v % PICOS_PER_USD) as f64 / 1e12
    }

    #[test]
    fn as_f64_in_64_bits_gives_the_128_bit_result() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            0,
            1,
            999_999_999_999,
            1_000_000_000_000,
            u64::MAX - 1,
            u64::MAX,
        ];
        for _ in 0..100_000 {
            // xorshift, at every magnitude.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            let got = Usd(u128::from(v)).as_f64();
            assert_eq!(
                got.to_bits(),
                as_f64_in_128_bits(u128::from(v)).to_bits(),
                "{v}"
            );
        }
        let above = u128::from(u64::MAX) + 12_345;
        assert_eq!(Usd(above).as_f64(), as_f64_in_128_bits(above));
    }
}
