//! How a job's progress reads: percentage, bar, elapsed time, ETA. Pure.

/// Percent done: by bytes when the total is known, else by tables.
pub fn pct_complete(
    bytes_done: i64,
    bytes_total: Option<i64>,
    tables_done: i64,
    tables_total: i64,
    finished: bool,
) -> f64 {
    if finished {
        return 100.0;
    }
    let pct = match bytes_total {
        Some(t) if t > 0 => bytes_done as f64 * 100.0 / t as f64,
        _ if tables_total > 0 => tables_done as f64 * 100.0 / tables_total as f64,
        _ => 0.0,
    };
    // Estimates of size can be below what is read; a running job never shows 100.
    pct.clamp(0.0, 99.9)
}

/// `01:02:03` for 3723 seconds.
pub fn hms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Seconds left at the rate so far, when it can be told.
pub fn eta_ms(pct: f64, elapsed_ms: i64) -> Option<i64> {
    if !(1.0..100.0).contains(&pct) || elapsed_ms <= 0 {
        return None;
    }
    Some((elapsed_ms as f64 * (100.0 - pct) / pct) as i64)
}

/// `[████████████░░░░░░░░] 60.0% | 450000 rows | 00:08:30 elapsed | ETA 00:05:40`
pub fn bar(pct: f64, rows: i64, elapsed_ms: i64, running: bool) -> String {
    const WIDTH: usize = 20;
    let filled = ((pct / 100.0) * WIDTH as f64).floor() as usize;
    let filled = filled.min(WIDTH);
    let mut out = String::from("[");
    out.push_str(&"█".repeat(filled));
    out.push_str(&"░".repeat(WIDTH - filled));
    out.push_str(&format!(
        "] {pct:.1}% | {rows} rows | {} elapsed",
        hms(elapsed_ms)
    ));
    if running {
        if let Some(eta) = eta_ms(pct, elapsed_ms) {
            out.push_str(&format!(" | ETA {}", hms(eta)));
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn bar_matches_the_documented_shape() {
        assert_eq!(
            bar(60.0, 450000, 510_000, false),
            "[████████████░░░░░░░░] 60.0% | 450000 rows | 00:08:30 elapsed"
        );
        assert_eq!(
            bar(50.0, 10, 60_000, true),
            "[██████████░░░░░░░░░░] 50.0% | 10 rows | 00:01:00 elapsed | ETA 00:01:00"
        );
        assert!(bar(0.0, 0, 0, true).starts_with("[░░░░"));
    }

    #[test]
    fn percent_by_bytes_then_tables() {
        assert_eq!(pct_complete(50, Some(200), 0, 4, false), 25.0);
        assert_eq!(pct_complete(0, None, 1, 4, false), 25.0);
        assert_eq!(pct_complete(0, Some(0), 0, 0, false), 0.0);
        assert_eq!(pct_complete(500, Some(200), 4, 4, false), 99.9);
        assert_eq!(pct_complete(0, None, 0, 0, true), 100.0);
    }

    #[test]
    fn time_formats() {
        assert_eq!(hms(3_723_000), "01:02:03");
        assert_eq!(hms(-5), "00:00:00");
        assert_eq!(eta_ms(25.0, 1000), Some(3000));
        assert_eq!(eta_ms(0.5, 1000), None);
    }
}
