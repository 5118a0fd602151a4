//! Depth Pro in Candle.
