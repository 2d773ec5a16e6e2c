//! Carrying out a clone: connect, read the catalog, render, run, copy.

pub mod create_db;
pub mod schema;
pub mod table;

/// "1.5 MB", for summaries.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(12), "12 bytes");
        assert_eq!(super::human_bytes(1536), "1.5 kB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GB");
    }
}
