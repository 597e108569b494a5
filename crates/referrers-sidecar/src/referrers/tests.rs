//! The referrers use case in process: stub core, stub upstream, stub shared tier, manual clock.
